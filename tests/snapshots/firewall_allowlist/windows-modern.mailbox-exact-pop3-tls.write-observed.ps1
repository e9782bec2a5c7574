$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=firewall_allowlist op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"mailbox-exact-pop3-tls","n":0,"data":{"create":[{"name":"hardening-smtp","display_name":"hardening: SMTP from the internet and other mail servers","description":"SMTP from the internet and other mail servers; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["25"],"remote_addresses":["Any"]},{"name":"hardening-submission","display_name":"hardening: Authenticated client SMTP submission (Client Frontend)","description":"Authenticated client SMTP submission (Client Frontend); managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["587"],"remote_addresses":["Any"]},{"name":"hardening-http","display_name":"hardening: HTTP: redirect to HTTPS, Autodiscover, Exchange remote PowerShell","description":"HTTP: redirect to HTTPS, Autodiscover, Exchange remote PowerShell; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["80"],"remote_addresses":["Any"]},{"name":"hardening-https","display_name":"hardening: HTTPS: OWA, ECP, EWS, ActiveSync, MAPI over HTTP, Outlook Anywhere, OAB","description":"HTTPS: OWA, ECP, EWS, ActiveSync, MAPI over HTTP, Outlook Anywhere, OAB; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["443"],"remote_addresses":["Any"]},{"name":"hardening-pop3s","display_name":"hardening: POP3 over TLS","description":"POP3 over TLS; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["995"],"remote_addresses":["Any"]},{"name":"hardening-exchange-peers","display_name":"hardening: Exchange servers and domain controllers, every port (Microsoft supports no filtering there)","description":"Exchange servers and domain controllers, every port (Microsoft supports no filtering there); managed by hardening (firewall_allowlist)","protocol":"Any","local_ports":["Any"],"remote_addresses":["10.0.10.11","10.0.10.12","10.0.10.13","10.0.10.14","10.0.20.1","10.0.20.2"]},{"name":"hardening-cluster-udp","display_name":"hardening: Failover Clustering heartbeats on this DAG member (UDP 3343)","description":"Failover Clustering heartbeats on this DAG member (UDP 3343); managed by hardening (firewall_allowlist)","protocol":"UDP","local_ports":["3343"],"remote_addresses":["Any"]},{"name":"hardening-cluster-tcp","display_name":"hardening: Failover Clustering node join on this DAG member (TCP 3343)","description":"Failover Clustering node join on this DAG member (TCP 3343); managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["3343"],"remote_addresses":["Any"]},{"name":"hardening-management","display_name":"hardening: WinRM management","description":"WinRM management; managed by hardening (firewall_allowlist)","protocol":"TCP","local_ports":["5985","5986"],"remote_addresses":["Any"]},{"name":"hardening-rdp-admin","display_name":"hardening: rdp-admin","description":"Remote Desktop from the administrators'' network only","protocol":"TCP","local_ports":["3389"],"remote_addresses":["10.0.50.0/24"]}],"update":[],"disable":["Allow all TCP","MSExchangeIMAP4 (TCP-In)","MSExchangePOP3 (TCP-In)"],"profiles":[{"name":"Public","enable":false,"block":true}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            # Allow rules first, other rules disabled next, profiles to Block last: never a moment in which
            # the management port is closed. A rule of protocol Any has no port filter.
            foreach ($rule in @($Desired.create)) {
                if (([string]$rule.protocol) -eq 'Any') {
                    $null = New-NetFirewallRule -Name ([string]$rule.name) -DisplayName ([string]$rule.display_name) -Description ([string]$rule.description) -Group 'hardening' -Direction 'Inbound' -Action 'Allow' -Enabled 'True' -Profile 'Any' -Protocol 'Any' -RemoteAddress @($rule.remote_addresses) -PolicyStore 'PersistentStore'
                } else {
                    $null = New-NetFirewallRule -Name ([string]$rule.name) -DisplayName ([string]$rule.display_name) -Description ([string]$rule.description) -Group 'hardening' -Direction 'Inbound' -Action 'Allow' -Enabled 'True' -Profile 'Any' -Protocol ([string]$rule.protocol) -LocalPort @($rule.local_ports) -RemoteAddress @($rule.remote_addresses) -PolicyStore 'PersistentStore'
                }
            }
            # Each rule's properties in the order given (ports cleared before the protocol becomes Any).
            foreach ($rule in @($Desired.update)) {
                $name = [string]$rule.name
                foreach ($step in @($rule.steps)) {
                    $property = [string]$step.property
                    $value = $step.value
                    if ($property -eq 'Protocol') {
                        Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Protocol ([string]$value)
                    } elseif ($property -eq 'LocalPort') {
                        Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -LocalPort @($value)
                    } elseif ($property -eq 'RemoteAddress') {
                        Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -RemoteAddress @($value)
                    } elseif ($property -eq 'Profile') {
                        Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Profile ([string]$value)
                    } elseif ($property -eq 'Direction') {
                        Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Direction ([string]$value)
                    } elseif ($property -eq 'Action') {
                        Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Action ([string]$value)
                    } elseif ($property -eq 'Enabled') {
                        Set-NetFirewallRule -Name $name -PolicyStore 'PersistentStore' -Enabled ([string]$value)
                    } else {
                        throw "firewall_allowlist: unknown property $property"
                    }
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
