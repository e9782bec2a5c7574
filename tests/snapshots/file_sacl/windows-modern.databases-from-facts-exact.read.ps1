$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=file_sacl op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-from-facts-exact","n":0,"data":{"path":"D:\\ExchangeDatabases\\DB01","principals":[],"policy":true}}'
    $Desired = $Call.data
    try {
        $State = & {
            $privileges = @(& whoami.exe '/priv' '/fo' 'csv')
            if (-not ($privileges -match '^"SeSecurityPrivilege"')) {
                throw 'this session does not hold SeSecurityPrivilege (Manage auditing and security log), so the SACL cannot be read: connect as an administrator with an elevated token'
            }
            $path = [string]$Desired.path
            $sidType = [System.Security.Principal.SecurityIdentifier]
            $resolved = @{}
            foreach ($name in @($Desired.principals)) {
                $account = New-Object -TypeName 'System.Security.Principal.NTAccount' -ArgumentList $name
                $resolved[$name] = $account.Translate($sidType).Value
            }
            $policy = $null
            if ([bool]$Desired.policy) {
                $fileSystem = '0CCE921D-69AE-11D9-BED3-505054503030'
                $columns = @('machine', 'target', 'name', 'guid', 'inclusion', 'exclusion', 'value')
                $lines = @(& auditpol.exe '/get' ('/subcategory:{' + $fileSystem + '}') '/r')
                if ($LASTEXITCODE -ne 0) {
                    throw ('auditpol.exe /get failed (exit code {0}): {1}' -f $LASTEXITCODE, ($lines -join ' '))
                }
                $listed = @(ConvertFrom-Csv -InputObject @($lines | Where-Object -FilterScript { $_ -ne '' }) -Header $columns | Select-Object -Skip 1)
                $backup = Join-Path -Path ([System.IO.Path]::GetTempPath()) -ChildPath ('hardening-auditpol-' + [guid]::NewGuid().ToString('N') + '.csv')
                $value = $null
                try {
                    $output = @(& auditpol.exe '/backup' ('/file:' + $backup))
                    if ($LASTEXITCODE -ne 0) {
                        throw ('auditpol.exe /backup failed (exit code {0}): {1}' -f $LASTEXITCODE, ($output -join ' '))
                    }
                    foreach ($row in @(Import-Csv -LiteralPath $backup -Header $columns | Select-Object -Skip 1)) {
                        $key = ([string]$row.guid).Trim('{}').ToUpperInvariant()
                        if ($null -eq $value -and $key -eq $fileSystem -and ([string]$row.value) -match '^[0-9]+$') {
                            $value = [int]$row.value
                        }
                    }
                } finally {
                    if (Test-Path -LiteralPath $backup) {
                        Remove-Item -LiteralPath $backup -Force
                    }
                }
                $policy = [pscustomobject]@{
                    guid = $fileSystem
                    name = [string]($listed | Select-Object -First 1).name
                    setting = [string]($listed | Select-Object -First 1).inclusion
                    value = $value
                }
            }
            if (-not (Test-Path -LiteralPath $path -PathType 'Container')) {
                [pscustomobject]@{ exists = $false; resolved = $resolved; policy = $policy }
            } else {
                $acl = Get-Acl -LiteralPath $path -Audit
                $audit = @(foreach ($rule in $acl.GetAuditRules($true, $true, $sidType)) {
                    [pscustomobject]@{
                        sid = $rule.IdentityReference.Value
                        rights = [int]$rule.FileSystemRights
                        inheritance = [int]$rule.InheritanceFlags
                        propagation = [int]$rule.PropagationFlags
                        flags = [int]$rule.AuditFlags
                        inherited = [bool]$rule.IsInherited
                    }
                })
                [pscustomobject]@{
                    exists = $true
                    protected = [bool]$acl.AreAuditRulesProtected
                    audit = $audit
                    resolved = $resolved
                    policy = $policy
                }
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
# hardening:call kind=file_sacl op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-from-facts-exact","n":1,"data":{"path":"D:\\ExchangeDatabases\\DB02","principals":[],"policy":false}}'
    $Desired = $Call.data
    try {
        $State = & {
            $privileges = @(& whoami.exe '/priv' '/fo' 'csv')
            if (-not ($privileges -match '^"SeSecurityPrivilege"')) {
                throw 'this session does not hold SeSecurityPrivilege (Manage auditing and security log), so the SACL cannot be read: connect as an administrator with an elevated token'
            }
            $path = [string]$Desired.path
            $sidType = [System.Security.Principal.SecurityIdentifier]
            $resolved = @{}
            foreach ($name in @($Desired.principals)) {
                $account = New-Object -TypeName 'System.Security.Principal.NTAccount' -ArgumentList $name
                $resolved[$name] = $account.Translate($sidType).Value
            }
            $policy = $null
            if ([bool]$Desired.policy) {
                $fileSystem = '0CCE921D-69AE-11D9-BED3-505054503030'
                $columns = @('machine', 'target', 'name', 'guid', 'inclusion', 'exclusion', 'value')
                $lines = @(& auditpol.exe '/get' ('/subcategory:{' + $fileSystem + '}') '/r')
                if ($LASTEXITCODE -ne 0) {
                    throw ('auditpol.exe /get failed (exit code {0}): {1}' -f $LASTEXITCODE, ($lines -join ' '))
                }
                $listed = @(ConvertFrom-Csv -InputObject @($lines | Where-Object -FilterScript { $_ -ne '' }) -Header $columns | Select-Object -Skip 1)
                $backup = Join-Path -Path ([System.IO.Path]::GetTempPath()) -ChildPath ('hardening-auditpol-' + [guid]::NewGuid().ToString('N') + '.csv')
                $value = $null
                try {
                    $output = @(& auditpol.exe '/backup' ('/file:' + $backup))
                    if ($LASTEXITCODE -ne 0) {
                        throw ('auditpol.exe /backup failed (exit code {0}): {1}' -f $LASTEXITCODE, ($output -join ' '))
                    }
                    foreach ($row in @(Import-Csv -LiteralPath $backup -Header $columns | Select-Object -Skip 1)) {
                        $key = ([string]$row.guid).Trim('{}').ToUpperInvariant()
                        if ($null -eq $value -and $key -eq $fileSystem -and ([string]$row.value) -match '^[0-9]+$') {
                            $value = [int]$row.value
                        }
                    }
                } finally {
                    if (Test-Path -LiteralPath $backup) {
                        Remove-Item -LiteralPath $backup -Force
                    }
                }
                $policy = [pscustomobject]@{
                    guid = $fileSystem
                    name = [string]($listed | Select-Object -First 1).name
                    setting = [string]($listed | Select-Object -First 1).inclusion
                    value = $value
                }
            }
            if (-not (Test-Path -LiteralPath $path -PathType 'Container')) {
                [pscustomobject]@{ exists = $false; resolved = $resolved; policy = $policy }
            } else {
                $acl = Get-Acl -LiteralPath $path -Audit
                $audit = @(foreach ($rule in $acl.GetAuditRules($true, $true, $sidType)) {
                    [pscustomobject]@{
                        sid = $rule.IdentityReference.Value
                        rights = [int]$rule.FileSystemRights
                        inheritance = [int]$rule.InheritanceFlags
                        propagation = [int]$rule.PropagationFlags
                        flags = [int]$rule.AuditFlags
                        inherited = [bool]$rule.IsInherited
                    }
                })
                [pscustomobject]@{
                    exists = $true
                    protected = [bool]$acl.AreAuditRulesProtected
                    audit = $audit
                    resolved = $resolved
                    policy = $policy
                }
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
