$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=service_restart op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"_restart","n":0,"data":{"services":["MSExchangeIMAP4","MSExchangeIMAP4BE","MSExchangePOP3","MSExchangePOP3BE"]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $results = @(foreach ($name in @($Desired.services)) {
                $service = Get-Service -Name $name -ErrorAction 'SilentlyContinue'
                if ($null -eq $service) {
                    [pscustomobject]@{ name = $name; action = 'missing' }
                } elseif ($service.Status -eq 'Running') {
                    Restart-Service -Name $name -Force
                    [pscustomobject]@{ name = $name; action = 'restarted' }
                } else {
                    [pscustomobject]@{ name = $name; action = 'not running' }
                }
            })
            [pscustomobject]@{ services = $results }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
