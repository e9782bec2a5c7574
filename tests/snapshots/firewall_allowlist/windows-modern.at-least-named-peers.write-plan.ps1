$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=firewall_allowlist op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"at-least-named-peers","n":0,"data":{"create":[{"name":"hardening-smtp","display_name":"hardening: SMTP from the internet and other mail servers","description":"SMTP from the internet and other mail servers; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["25"],"remote_addresses":["Any"]},{"name":"hardening-submission","display_name":"hardening: Authenticated client SMTP submission (Client Frontend)","description":"Authenticated client SMTP submission (Client Frontend); managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["587"],"remote_addresses":["Any"]},{"name":"hardening-http","display_name":"hardening: HTTP: redirect to HTTPS, Autodiscover, Exchange remote PowerShell","description":"HTTP: redirect to HTTPS, Autodiscover, Exchange remote PowerShell; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["80"],"remote_addresses":["Any"]},{"name":"hardening-https","display_name":"hardening: HTTPS: OWA, ECP, EWS, ActiveSync, MAPI over HTTP, Outlook Anywhere, OAB","description":"HTTPS: OWA, ECP, EWS, ActiveSync, MAPI over HTTP, Outlook Anywhere, OAB; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["443"],"remote_addresses":["Any"]},{"name":"hardening-backend","display_name":"hardening: Exchange Back End web site (HTTP 81, HTTPS 444), proxied to by the front end","description":"Exchange Back End web site (HTTP 81, HTTPS 444), proxied to by the front end; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["81","444"],"remote_addresses":["mail01.contoso.com","10.0.0.0/24"]},{"name":"hardening-transport","display_name":"hardening: Transport between Exchange servers (receive connectors 2525, 465, 717, 475)","description":"Transport between Exchange servers (receive connectors 2525, 465, 717, 475); managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["2525","465","717","475"],"remote_addresses":["mail01.contoso.com","10.0.0.0/24"]},{"name":"hardening-replication","display_name":"hardening: DAG log replication and seeding (default ReplicationPort)","description":"DAG log replication and seeding (default ReplicationPort); managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["64327"],"remote_addresses":["mail01.contoso.com","10.0.0.0/24"]},{"name":"hardening-rpc","display_name":"hardening: RPC endpoint mapper and dynamic RPC between Exchange servers and domain controllers","description":"RPC endpoint mapper and dynamic RPC between Exchange servers and domain controllers; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["135","49152-65535"],"remote_addresses":["mail01.contoso.com","10.0.0.0/24"]},{"name":"hardening-management","display_name":"hardening: WinRM management","description":"WinRM (PowerShell remoting) for management; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["5986"],"remote_addresses":["10.0.50.0/24"]}],"update":[],"disable":[],"profiles":[{"name":"Domain","enable":true,"block":true},{"name":"Public","enable":true,"block":true}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            # Allow rules first, other rules disabled next, profiles to Block last: never a moment in which
            # the management port is closed.
            foreach ($rule in @($Desired.create)) {
                $null = New-NetFirewallRule -Name ([string]$rule.name) -DisplayName ([string]$rule.display_name) -Description ([string]$rule.description) -Group 'hardening' -Direction 'Inbound' -Action 'Allow' -Enabled 'True' -Profile 'Any' -Protocol ([string]$rule.protocol) -LocalPort @($rule.local_ports) -RemoteAddress @($rule.remote_addresses) -PolicyStore 'PersistentStore'
            }
            foreach ($rule in @($Desired.update)) {
                $name = [string]$rule.name
                if ($null -ne $rule.PSObject.Properties['protocol']) {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Protocol ([string]$rule.protocol)
                }
                if ($null -ne $rule.PSObject.Properties['local_ports']) {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -LocalPort @($rule.local_ports)
                }
                if ($null -ne $rule.PSObject.Properties['remote_addresses']) {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -RemoteAddress @($rule.remote_addresses)
                }
                if ($null -ne $rule.PSObject.Properties['profile']) {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Profile 'Any'
                }
                if ($null -ne $rule.PSObject.Properties['direction']) {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Direction 'Inbound'
                }
                if ($null -ne $rule.PSObject.Properties['action']) {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Action 'Allow'
                }
                if ($null -ne $rule.PSObject.Properties['enable']) {
                    Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Enabled 'True'
                }
            }
            # Disabled, never deleted: re-enabling them by name is the rollback.
            foreach ($name in @($Desired.disable)) {
                Set-NetFirewallRule -Name ([string]$name) -PolicyStore 'PersistentStore' -Enabled 'False'
            }
            foreach ($item in @($Desired.profiles)) {
                if ($item.enable) {
                    Set-NetFirewallProfile -Name ([string]$item.name) -PolicyStore 'PersistentStore' -Enabled 'True'
                }
                if ($item.block) {
                    Set-NetFirewallProfile -Name ([string]$item.name) -PolicyStore 'PersistentStore' -DefaultInboundAction 'Block'
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
