$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=windows_service op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"imap4-automatic-running","n":0,"data":{"names":["MSExchangeIMAP4"]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $all = @(Get-CimInstance -ClassName 'Win32_Service' -Property @('Name', 'State', 'StartMode'))
            $services = @(foreach ($name in @($Desired.names)) {
                $found = @($all | Where-Object -FilterScript { $_.Name -eq $name })
                if ($found.Count -eq 0) {
                    [pscustomobject]@{ name = [string]$name; exists = $false }
                } else {
                    [pscustomobject]@{
                        name = [string]$found[0].Name
                        exists = $true
                        status = [string]$found[0].State
                        start_mode = [string]$found[0].StartMode
                    }
                }
            })
            [pscustomobject]@{ services = $services }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
