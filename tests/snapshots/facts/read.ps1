$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=facts op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"_facts","n":0,"data":{}}'
    $Desired = $Call.data
    try {
        $State = & {
            $os = Get-CimInstance -ClassName 'Win32_OperatingSystem'
            $setup = 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup'
            $version = $null
            $install = $null
            $queue = $null
            $roles = @()
            if (Test-Path -LiteralPath $setup) {
                $s = Get-ItemProperty -LiteralPath $setup
                $version = '{0}.{1}.{2}.{3}' -f $s.MsiProductMajor, $s.MsiProductMinor, $s.MsiBuildMajor, $s.MsiBuildMinor
                $install = [string]$s.MsiInstallPath
                # The queue database folder: EdgeTransport.exe.config's QueueDatabasePath, else the default.
                $queue = Join-Path -Path $install -ChildPath 'TransportRoles\data\Queue'
                $config = Join-Path -Path $install -ChildPath 'Bin\EdgeTransport.exe.config'
                if (Test-Path -LiteralPath $config) {
                    [xml]$xml = Get-Content -LiteralPath $config -Raw
                    $node = @($xml.configuration.appSettings.add) | Where-Object -FilterScript { $_.key -eq 'QueueDatabasePath' }
                    if ($null -ne $node -and $node.value) {
                        $queue = [string]$node.value
                    }
                }
                $roleKeys = @('MailboxRole', 'ClientAccessRole', 'FrontendTransportRole', 'HubTransportRole', 'EdgeTransportRole')
                $roles = @(foreach ($key in $roleKeys) {
                    $rolePath = 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\' + $key
                    if (Test-Path -LiteralPath $rolePath) {
                        $role = Get-ItemProperty -LiteralPath $rolePath
                        if ($null -ne $role.PSObject.Properties['ConfiguredVersion']) {
                            $key.Substring(0, $key.Length - 4)
                        }
                    }
                })
            }
            [pscustomobject]@{
                computer_name = $env:COMPUTERNAME
                os_caption = [string]$os.Caption
                os_version = [string]$os.Version
                powershell_version = $PSVersionTable.PSVersion.ToString()
                exchange_version = $version
                exchange_roles = $roles
                exchange_install_path = $install
                transport_queue_path = $queue
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
