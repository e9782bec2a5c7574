$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=ntfs_acl op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-from-facts","n":0,"data":{"path":"D:\\ExchangeDatabases\\DB01","access":[{"sid":"S-1-5-21-3623811015-3361044348-30300820-1117","rights":1245631,"inheritance":3,"propagation":0,"type":"Allow"}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            $sidType = [System.Security.Principal.SecurityIdentifier]
            $item = Get-Item -LiteralPath $path -Force
            $acl = $item.GetAccessControl('Access')
            if ($null -ne $Desired.PSObject.Properties['protected']) {
                $acl.SetAccessRuleProtection([bool]$Desired.protected, [bool]$Desired.preserve_inherited)
            }
            if ($null -ne $Desired.PSObject.Properties['access']) {
                foreach ($rule in @($acl.GetAccessRules($true, $false, $sidType))) {
                    [void]$acl.RemoveAccessRuleSpecific($rule)
                }
                foreach ($entry in @($Desired.access)) {
                    $sid = New-Object -TypeName 'System.Security.Principal.SecurityIdentifier' -ArgumentList ([string]$entry.sid)
                    $rule = New-Object -TypeName 'System.Security.AccessControl.FileSystemAccessRule' -ArgumentList @(
                        $sid,
                        [System.Security.AccessControl.FileSystemRights][int]$entry.rights,
                        [System.Security.AccessControl.InheritanceFlags][int]$entry.inheritance,
                        [System.Security.AccessControl.PropagationFlags][int]$entry.propagation,
                        [System.Security.AccessControl.AccessControlType][string]$entry.type
                    )
                    $acl.AddAccessRule($rule)
                }
            }
            $item.SetAccessControl($acl)
            if ($null -ne $Desired.PSObject.Properties['owner']) {
                $ownerAcl = $item.GetAccessControl('Owner')
                $ownerAcl.SetOwner((New-Object -TypeName 'System.Security.Principal.SecurityIdentifier' -ArgumentList ([string]$Desired.owner)))
                $item.SetAccessControl($ownerAcl)
            }
            [pscustomobject]@{ written = $true }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
# hardening:call kind=ntfs_acl op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-from-facts","n":1,"data":{"path":"D:\\ExchangeDatabases\\DB02","access":[{"sid":"S-1-5-21-3623811015-3361044348-30300820-1117","rights":1245631,"inheritance":3,"propagation":0,"type":"Allow"}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            $sidType = [System.Security.Principal.SecurityIdentifier]
            $item = Get-Item -LiteralPath $path -Force
            $acl = $item.GetAccessControl('Access')
            if ($null -ne $Desired.PSObject.Properties['protected']) {
                $acl.SetAccessRuleProtection([bool]$Desired.protected, [bool]$Desired.preserve_inherited)
            }
            if ($null -ne $Desired.PSObject.Properties['access']) {
                foreach ($rule in @($acl.GetAccessRules($true, $false, $sidType))) {
                    [void]$acl.RemoveAccessRuleSpecific($rule)
                }
                foreach ($entry in @($Desired.access)) {
                    $sid = New-Object -TypeName 'System.Security.Principal.SecurityIdentifier' -ArgumentList ([string]$entry.sid)
                    $rule = New-Object -TypeName 'System.Security.AccessControl.FileSystemAccessRule' -ArgumentList @(
                        $sid,
                        [System.Security.AccessControl.FileSystemRights][int]$entry.rights,
                        [System.Security.AccessControl.InheritanceFlags][int]$entry.inheritance,
                        [System.Security.AccessControl.PropagationFlags][int]$entry.propagation,
                        [System.Security.AccessControl.AccessControlType][string]$entry.type
                    )
                    $acl.AddAccessRule($rule)
                }
            }
            $item.SetAccessControl($acl)
            if ($null -ne $Desired.PSObject.Properties['owner']) {
                $ownerAcl = $item.GetAccessControl('Owner')
                $ownerAcl.SetOwner((New-Object -TypeName 'System.Security.Principal.SecurityIdentifier' -ArgumentList ([string]$Desired.owner)))
                $item.SetAccessControl($ownerAcl)
            }
            [pscustomobject]@{ written = $true }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
