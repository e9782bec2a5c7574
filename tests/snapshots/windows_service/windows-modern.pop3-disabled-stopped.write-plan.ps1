$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=windows_service op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"pop3-disabled-stopped","n":0,"data":{"services":[{"name":"MSExchangePOP3","start_type":"Disabled","status":"Stopped","stop_dependents":true},{"name":"MSExchangePOP3BE","start_type":"Disabled","status":"Stopped","stop_dependents":true}]}}'
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
