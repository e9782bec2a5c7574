$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=iis_ssl op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"require-ssl-false","n":0,"data":{"site":"Default Web Site","virtual_directories":["PowerShell","ecp"]}}'
    $Desired = $Call.data
    try {
        $State = & {
            Import-Module -Name 'WebAdministration'
            $apphost = 'MACHINE/WEBROOT/APPHOST'
            $filter = 'system.webServer/security/access'
            $site = [string]$Desired.site
            $siteExists = Test-Path -LiteralPath ('IIS:\Sites\' + $site)
            $directories = @(foreach ($vdir in @($Desired.virtual_directories)) {
                $name = [string]$vdir
                $location = $site + '/' + $name
                $exists = $siteExists -and (Test-Path -LiteralPath ('IIS:\Sites\' + $site + '\' + $name.Replace('/', '\')))
                if (-not $exists) {
                    [pscustomobject]@{ name = $name; exists = $false }
                } else {
                    # Enum attributes come back as their name ("Ssl,Ssl128"), others as a ConfigurationAttribute.
                    $flags = Get-WebConfigurationProperty -PSPath $apphost -Location $location -Filter $filter -Name 'sslFlags'
                    if ($null -ne $flags -and $null -ne $flags.PSObject.Properties['Value']) {
                        $flags = $flags.Value
                    }
                    $section = Get-WebConfiguration -PSPath $apphost -Location $location -Filter $filter
                    [pscustomobject]@{
                        name = $name
                        exists = $true
                        sslFlags = [string]$flags
                        explicit = [bool]$section.IsLocallyStored
                    }
                }
            })
            [pscustomobject]@{ site_exists = [bool]$siteExists; virtual_directories = $directories }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
