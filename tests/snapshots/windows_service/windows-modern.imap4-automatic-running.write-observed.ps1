$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=windows_service op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"imap4-automatic-running","n":0,"data":{"services":[{"name":"MSExchangeIMAP4","start_type":"Automatic","status":"Running"}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            foreach ($entry in @($Desired.services)) {
                $service = New-Object -TypeName 'System.ServiceProcess.ServiceController' -ArgumentList @([string]$entry.name)
                if ($null -ne $entry.PSObject.Properties['start_type']) {
                    Set-Service -InputObject $service -StartupType ([string]$entry.start_type)
                }
                if ($null -ne $entry.PSObject.Properties['status']) {
                    if ([string]$entry.status -eq 'Stopped') {
                        if ([bool]$entry.stop_dependents) {
                            Stop-Service -InputObject $service -Force
                        } else {
                            Stop-Service -InputObject $service
                        }
                    } else {
                        Start-Service -InputObject $service
                    }
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
