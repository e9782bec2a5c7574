$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=iis_redirect op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"owa-found","n":0,"data":{"site":"Default Web Site","pin_ssl":["ecp","EWS","Microsoft-Server-ActiveSync","OAB","mapi","Autodiscover","API","aspnet_client"],"disable":["owa","ecp","EWS","Microsoft-Server-ActiveSync","OAB","mapi","Autodiscover","API","aspnet_client","Rpc","PowerShell"],"root_ssl_flags":"None","redirect":{"destination":"https://mail.contoso.com/owa","childOnly":true,"enabled":true}}}'
    $Desired = $Call.data
    try {
        $State = & {
            Import-Module -Name 'WebAdministration'
            $apphost = 'MACHINE/WEBROOT/APPHOST'
            $redirectFilter = 'system.webServer/httpRedirect'
            $accessFilter = 'system.webServer/security/access'
            $site = [string]$Desired.site
            # Pin: the directory keeps, on itself, the sslFlags it has now (read here, at write time, so a
            # value another control wrote earlier in this run is kept), before the root's value changes.
            foreach ($vdir in @($Desired.pin_ssl)) {
                $location = $site + '/' + [string]$vdir
                $flags = Get-WebConfigurationProperty -PSPath $apphost -Location $location -Filter $accessFilter -Name 'sslFlags'
                if ($null -ne $flags -and $null -ne $flags.PSObject.Properties['Value']) {
                    $flags = $flags.Value
                }
                Set-WebConfigurationProperty -PSPath $apphost -Location $location -Filter $accessFilter -Name 'sslFlags' -Value ([string]$flags)
            }
            foreach ($vdir in @($Desired.disable)) {
                $location = $site + '/' + [string]$vdir
                Set-WebConfigurationProperty -PSPath $apphost -Location $location -Filter $redirectFilter -Name 'enabled' -Value $false
            }
            if ($null -ne $Desired.PSObject.Properties['root_ssl_flags']) {
                Set-WebConfigurationProperty -PSPath $apphost -Location $site -Filter $accessFilter -Name 'sslFlags' -Value ([string]$Desired.root_ssl_flags)
            }
            if ($null -ne $Desired.PSObject.Properties['redirect']) {
                foreach ($property in @($Desired.redirect.PSObject.Properties)) {
                    Set-WebConfigurationProperty -PSPath $apphost -Location $site -Filter $redirectFilter -Name $property.Name -Value $property.Value
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
