$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=iis_ssl op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"owa-group-128","n":0,"data":{"site":"Default Web Site","set":[{"name":"owa","sslFlags":"Ssl,Ssl128"},{"name":"ecp","sslFlags":"Ssl,Ssl128"}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            Import-Module -Name 'WebAdministration'
            $apphost = 'MACHINE/WEBROOT/APPHOST'
            $filter = 'system.webServer/security/access'
            $site = [string]$Desired.site
            foreach ($entry in @($Desired.set)) {
                $location = $site + '/' + [string]$entry.name
                Set-WebConfigurationProperty -PSPath $apphost -Location $location -Filter $filter -Name 'sslFlags' -Value ([string]$entry.sslFlags)
            }
            [pscustomobject]@{ written = $true }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
