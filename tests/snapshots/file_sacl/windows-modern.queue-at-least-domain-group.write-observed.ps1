$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=file_sacl op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"queue-at-least-domain-group","n":0,"data":{"path":"C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\data\\Queue","audit":[{"sid":"S-1-5-21-3623811015-3361044348-30300820-1117","rights":262144,"inheritance":0,"propagation":0,"flags":2},{"sid":"S-1-5-32-544","rights":524288,"inheritance":3,"propagation":0,"flags":1}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $privileges = @(& whoami.exe '/priv' '/fo' 'csv')
            if (-not ($privileges -match '^"SeSecurityPrivilege"')) {
                throw 'this session does not hold SeSecurityPrivilege (Manage auditing and security log), so the SACL cannot be written: connect as an administrator with an elevated token'
            }
            $sidType = [System.Security.Principal.SecurityIdentifier]
            if ($null -ne $Desired.PSObject.Properties['path']) {
                $item = Get-Item -LiteralPath ([string]$Desired.path) -Force
                $acl = $item.GetAccessControl('Audit')
                foreach ($rule in @($acl.GetAuditRules($true, $false, $sidType))) {
                    [void]$acl.RemoveAuditRuleSpecific($rule)
                }
                foreach ($entry in @($Desired.audit)) {
                    $sid = New-Object -TypeName 'System.Security.Principal.SecurityIdentifier' -ArgumentList ([string]$entry.sid)
                    $rule = New-Object -TypeName 'System.Security.AccessControl.FileSystemAuditRule' -ArgumentList @(
                        $sid,
                        [System.Security.AccessControl.FileSystemRights][int]$entry.rights,
                        [System.Security.AccessControl.InheritanceFlags][int]$entry.inheritance,
                        [System.Security.AccessControl.PropagationFlags][int]$entry.propagation,
                        [System.Security.AccessControl.AuditFlags][int]$entry.flags
                    )
                    $acl.AddAuditRule($rule)
                }
                $item.SetAccessControl($acl)
            }
            if ($null -ne $Desired.PSObject.Properties['policy']) {
                $arguments = @('/set', '/subcategory:{0CCE921D-69AE-11D9-BED3-505054503030}')
                if ([bool]$Desired.policy.success) {
                    $arguments += '/success:enable'
                }
                if ([bool]$Desired.policy.failure) {
                    $arguments += '/failure:enable'
                }
                $output = @(& auditpol.exe $arguments)
                if ($LASTEXITCODE -ne 0) {
                    throw ('auditpol.exe /set /subcategory:File System failed (exit code {0}): {1}' -f $LASTEXITCODE, ($output -join ' '))
                }
            }
            [pscustomobject]@{ written = $true }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
