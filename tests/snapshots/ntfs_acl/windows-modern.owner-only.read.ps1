$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=ntfs_acl op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"owner-only","n":0,"data":{"path":"C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\data\\Queue","principals":["CONTOSO\\Exchange Servers"]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            $sidType = [System.Security.Principal.SecurityIdentifier]
            $resolved = @{}
            foreach ($name in @($Desired.principals)) {
                $account = New-Object -TypeName 'System.Security.Principal.NTAccount' -ArgumentList $name
                $resolved[$name] = $account.Translate($sidType).Value
            }
            if (-not (Test-Path -LiteralPath $path -PathType 'Container')) {
                [pscustomobject]@{ exists = $false; resolved = $resolved }
            } else {
                $acl = Get-Acl -LiteralPath $path
                $access = @(foreach ($rule in $acl.GetAccessRules($true, $true, $sidType)) {
                    [pscustomobject]@{
                        sid = $rule.IdentityReference.Value
                        rights = [int]$rule.FileSystemRights
                        inheritance = [int]$rule.InheritanceFlags
                        propagation = [int]$rule.PropagationFlags
                        type = [string]$rule.AccessControlType
                        inherited = [bool]$rule.IsInherited
                    }
                })
                [pscustomobject]@{
                    exists = $true
                    owner = $acl.GetOwner($sidType).Value
                    protected = [bool]$acl.AreAccessRulesProtected
                    access = $access
                    resolved = $resolved
                }
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
