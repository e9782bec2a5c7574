$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=firewall_rule op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"allow-rdp-from-admins","n":0,"data":{"name":"hardening-rdp","create":{"display_name":"hardening-rdp","description":"","enabled":"True","direction":"Inbound","action":"Allow","protocol":"TCP","local_ports":["3389","3390-3391"],"remote_ports":["1024-65535"],"remote_addresses":["10.0.50.0/24","jump01.contoso.com"],"profile":"Domain, Private"},"steps":[]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $name = [string]$Desired.name
            $new = $Desired.create
            if ($null -ne $new) {
                if (([string]$new.protocol) -eq 'Any') {
                    $null = New-NetFirewallRule -Name $name -DisplayName ([string]$new.display_name) -Description ([string]$new.description) -Enabled ([string]$new.enabled) -Direction ([string]$new.direction) -Action ([string]$new.action) -Protocol 'Any' -RemoteAddress @($new.remote_addresses) -Profile ([string]$new.profile) -PolicyStore 'PersistentStore'
                } else {
                    $null = New-NetFirewallRule -Name $name -DisplayName ([string]$new.display_name) -Description ([string]$new.description) -Enabled ([string]$new.enabled) -Direction ([string]$new.direction) -Action ([string]$new.action) -Protocol ([string]$new.protocol) -LocalPort @($new.local_ports) -RemotePort @($new.remote_ports) -RemoteAddress @($new.remote_addresses) -Profile ([string]$new.profile) -PolicyStore 'PersistentStore'
                }
            }
            foreach ($step in @($Desired.steps)) {
                $property = [string]$step.property
                $value = $step.value
                if ($property -eq 'Protocol') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Protocol ([string]$value)
                } elseif ($property -eq 'LocalPort') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -LocalPort @($value)
                } elseif ($property -eq 'RemotePort') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -RemotePort @($value)
                } elseif ($property -eq 'RemoteAddress') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -RemoteAddress @($value)
                } elseif ($property -eq 'Profile') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Profile ([string]$value)
                } elseif ($property -eq 'Direction') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Direction ([string]$value)
                } elseif ($property -eq 'Action') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Action ([string]$value)
                } elseif ($property -eq 'DisplayName') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -NewDisplayName ([string]$value)
                } elseif ($property -eq 'Description') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Description ([string]$value)
                } elseif ($property -eq 'Enabled') {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Enabled ([string]$value)
                } else {
                    throw "firewall_rule: unknown property $property"
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
