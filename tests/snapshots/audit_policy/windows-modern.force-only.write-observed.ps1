$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=audit_policy op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"force-only","n":0,"data":{"force_subcategory_settings":true}}'
    $Desired = $Call.data
    try {
        $State = & {
            if ($null -ne $Desired.PSObject.Properties['subcategories']) {
                foreach ($entry in @($Desired.subcategories)) {
                    $guid = ([guid][string]$entry.guid).ToString('B')
                    $arguments = @('/set', ('/subcategory:' + $guid))
                    if ($null -ne $entry.PSObject.Properties['success']) {
                        if ([bool]$entry.success) {
                            $arguments += '/success:enable'
                        } else {
                            $arguments += '/success:disable'
                        }
                    }
                    if ($null -ne $entry.PSObject.Properties['failure']) {
                        if ([bool]$entry.failure) {
                            $arguments += '/failure:enable'
                        } else {
                            $arguments += '/failure:disable'
                        }
                    }
                    $output = @(& auditpol.exe $arguments)
                    if ($LASTEXITCODE -ne 0) {
                        throw ('auditpol.exe /set /subcategory:{0} failed (exit code {1}): {2}' -f $guid, $LASTEXITCODE, ($output -join ' '))
                    }
                }
            }
            if ($null -ne $Desired.PSObject.Properties['force_subcategory_settings']) {
                $null = New-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa' -Name 'SCENoApplyLegacyAuditPolicy' -PropertyType 'DWord' -Value ([int][bool]$Desired.force_subcategory_settings) -Force
            }
            [pscustomobject]@{ written = $true }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
