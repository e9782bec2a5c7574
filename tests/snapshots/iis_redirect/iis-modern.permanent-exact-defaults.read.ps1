$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=iis_redirect op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"permanent-exact-defaults","n":0,"data":{"site":"Default Web Site","virtual_directories":["API","aspnet_client","Autodiscover","ecp","EWS","mapi","Microsoft-Server-ActiveSync","OAB","owa","PowerShell","Rpc"]}}'
    $Desired = $Call.data
    try {
        $State = & {
            Import-Module -Name 'WebAdministration'
            $apphost = 'MACHINE/WEBROOT/APPHOST'
            $redirectFilter = 'system.webServer/httpRedirect'
            $accessFilter = 'system.webServer/security/access'
            $site = [string]$Desired.site
            if (-not (Test-Path -LiteralPath ('IIS:\Sites\' + $site))) {
                [pscustomobject]@{ site_exists = $false }
            } else {
                $root = [ordered]@{}
                foreach ($attribute in @('enabled', 'destination', 'exactDestination', 'childOnly', 'httpResponseStatus')) {
                    # Enum attributes come back as their name, others as a ConfigurationAttribute.
                    $value = Get-WebConfigurationProperty -PSPath $apphost -Location $site -Filter $redirectFilter -Name $attribute
                    if ($null -ne $value -and $null -ne $value.PSObject.Properties['Value']) {
                        $value = $value.Value
                    }
                    $root[$attribute] = $value
                }
                $flags = Get-WebConfigurationProperty -PSPath $apphost -Location $site -Filter $accessFilter -Name 'sslFlags'
                if ($null -ne $flags -and $null -ne $flags.PSObject.Properties['Value']) {
                    $flags = $flags.Value
                }
                $root['sslFlags'] = [string]$flags
                $directories = @(foreach ($vdir in @($Desired.virtual_directories)) {
                    $name = [string]$vdir
                    $location = $site + '/' + $name
                    if (-not (Test-Path -LiteralPath ('IIS:\Sites\' + $site + '\' + $name.Replace('/', '\')))) {
                        [pscustomobject]@{ name = $name; exists = $false }
                    } else {
                        $enabled = Get-WebConfigurationProperty -PSPath $apphost -Location $location -Filter $redirectFilter -Name 'enabled'
                        if ($null -ne $enabled -and $null -ne $enabled.PSObject.Properties['Value']) {
                            $enabled = $enabled.Value
                        }
                        $redirect = Get-WebConfiguration -PSPath $apphost -Location $location -Filter $redirectFilter
                        $access = Get-WebConfiguration -PSPath $apphost -Location $location -Filter $accessFilter
                        [pscustomobject]@{
                            name = $name
                            exists = $true
                            enabled = $enabled
                            redirect_explicit = [bool]$redirect.IsLocallyStored
                            ssl_explicit = [bool]$access.IsLocallyStored
                        }
                    }
                })
                [pscustomobject]@{ site_exists = $true; root = [pscustomobject]$root; virtual_directories = $directories }
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
