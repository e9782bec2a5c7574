$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=firewall_rule op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"allow-any-protocol-disabled","n":0,"data":{"name":"Allow monitoring","resolve":[]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $resolved = @{}
            foreach ($hostName in @($Desired.resolve)) {
                $resolved[[string]$hostName] = @(foreach ($ip in [System.Net.Dns]::GetHostAddresses([string]$hostName)) { $ip.IPAddressToString })
            }
            # An absent rule is not an error here: "no objects found" is reported as one by the cmdlet.
            $found = @(Get-NetFirewallRule -Name ([string]$Desired.name) -PolicyStore 'ActiveStore' -ErrorAction 'SilentlyContinue')
            $rules = @(foreach ($rule in $found) {
                $ports = Get-NetFirewallPortFilter -AssociatedNetFirewallRule $rule -PolicyStore 'ActiveStore'
                $addresses = Get-NetFirewallAddressFilter -AssociatedNetFirewallRule $rule -PolicyStore 'ActiveStore'
                [pscustomobject]@{
                    name = [string]$rule.Name
                    display_name = [string]$rule.DisplayName
                    description = [string]$rule.Description
                    enabled = [string]$rule.Enabled
                    direction = [string]$rule.Direction
                    action = [string]$rule.Action
                    profile = [string]$rule.Profile
                    source_type = [string]$rule.PolicyStoreSourceType
                    protocol = [string]$ports.Protocol
                    local_ports = @($ports.LocalPort)
                    remote_ports = @($ports.RemotePort)
                    remote_addresses = @($addresses.RemoteAddress)
                }
            })
            [pscustomobject]@{
                rules = $rules
                resolved = $resolved
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
