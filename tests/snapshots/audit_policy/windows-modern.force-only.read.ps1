$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=audit_policy op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"force-only","n":0,"data":{}}'
    $Desired = $Call.data
    try {
        $State = & {
            $columns = @('machine', 'target', 'name', 'guid', 'inclusion', 'exclusion', 'value')
            $lines = @(& auditpol.exe '/get' '/category:*' '/r')
            if ($LASTEXITCODE -ne 0) {
                throw ('auditpol.exe /get failed (exit code {0}): {1}' -f $LASTEXITCODE, ($lines -join ' '))
            }
            $listed = @(ConvertFrom-Csv -InputObject @($lines | Where-Object -FilterScript { $_ -ne '' }) -Header $columns | Select-Object -Skip 1)
            $backup = Join-Path -Path ([System.IO.Path]::GetTempPath()) -ChildPath ('hardening-auditpol-' + [guid]::NewGuid().ToString('N') + '.csv')
            $values = @{}
            try {
                $output = @(& auditpol.exe '/backup' ('/file:' + $backup))
                if ($LASTEXITCODE -ne 0) {
                    throw ('auditpol.exe /backup failed (exit code {0}): {1}' -f $LASTEXITCODE, ($output -join ' '))
                }
                foreach ($row in @(Import-Csv -LiteralPath $backup -Header $columns | Select-Object -Skip 1)) {
                    $key = ([string]$row.guid).Trim('{}').ToUpperInvariant()
                    if ($key -and -not $values.ContainsKey($key) -and ([string]$row.value) -match '^[0-9]+$') {
                        $values[$key] = [int]$row.value
                    }
                }
            } finally {
                if (Test-Path -LiteralPath $backup) {
                    Remove-Item -LiteralPath $backup -Force
                }
            }
            $subcategories = @(foreach ($row in $listed) {
                $key = ([string]$row.guid).Trim('{}').ToUpperInvariant()
                [pscustomobject]@{
                    guid = $key
                    name = [string]$row.name
                    setting = [string]$row.inclusion
                    value = $values[$key]
                }
            })
            $option = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa' -Name 'SCENoApplyLegacyAuditPolicy' -ErrorAction 'SilentlyContinue'
            $force = $null
            if ($null -ne $option) {
                $force = [int]$option.SCENoApplyLegacyAuditPolicy
            }
            [pscustomobject]@{
                subcategories = $subcategories
                force_subcategory_settings = $force
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
