$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=ipsec_rule op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"dc-ldap-kerberos-encrypted","n":0,"data":{"name":"hardening-dc-ldap","phase1_set":"hardening-dc-ldap-phase1","quickmode_set":"hardening-dc-ldap-quickmode","resolve":["dc01.contoso.com","dc02.contoso.com"],"sa":false}}'
    $Desired = $Call.data
    try {
        $State = & {
            $resolved = @{}
            foreach ($hostName in @($Desired.resolve)) {
                $resolved[[string]$hostName] = @(foreach ($ip in [System.Net.Dns]::GetHostAddresses([string]$hostName)) { $ip.IPAddressToString })
            }
            # Absent rules and sets are not errors here: "no objects found" is reported as one by the cmdlets.
            $found = @(Get-NetIPsecRule -IPsecRuleName ([string]$Desired.name) -PolicyStore 'ActiveStore' -ErrorAction 'SilentlyContinue')
            $rules = @(foreach ($rule in $found) {
                $ports = Get-NetFirewallPortFilter -AssociatedNetIPsecRule $rule -PolicyStore 'ActiveStore'
                $addresses = Get-NetFirewallAddressFilter -AssociatedNetIPsecRule $rule -PolicyStore 'ActiveStore'
                [pscustomobject]@{
                    name = [string]$rule.Name
                    display_name = [string]$rule.DisplayName
                    enabled = [string]$rule.Enabled
                    mode = [string]$rule.Mode
                    inbound_security = [string]$rule.InboundSecurity
                    outbound_security = [string]$rule.OutboundSecurity
                    key_module = [string]$rule.KeyModule
                    profile = [string]$rule.Profile
                    phase1_auth_set = [string]$rule.Phase1AuthSet
                    quick_mode_crypto_set = [string]$rule.QuickModeCryptoSet
                    source_type = [string]$rule.PolicyStoreSourceType
                    protocol = [string]$ports.Protocol
                    local_ports = @($ports.LocalPort)
                    remote_ports = @($ports.RemotePort)
                    local_addresses = @($addresses.LocalAddress)
                    remote_addresses = @($addresses.RemoteAddress)
                }
            })
            $phase1 = $null
            $authSets = @(Get-NetIPsecPhase1AuthSet -Name ([string]$Desired.phase1_set) -PolicyStore 'ActiveStore' -ErrorAction 'SilentlyContinue')
            if ($authSets.Count -gt 0) {
                $phase1 = [pscustomobject]@{
                    proposals = @(foreach ($proposal in @($authSets[0].Proposal)) {
                        [pscustomobject]@{
                            method = [string]$proposal.AuthenticationMethod
                            authority = [string]$proposal.Authority
                            authority_type = [string]$proposal.AuthorityType
                        }
                    })
                }
            }
            $quickmode = $null
            if ($null -ne $Desired.quickmode_set) {
                $cryptoSets = @(Get-NetIPsecQuickModeCryptoSet -Name ([string]$Desired.quickmode_set) -PolicyStore 'ActiveStore' -ErrorAction 'SilentlyContinue')
                if ($cryptoSets.Count -gt 0) {
                    $quickmode = [pscustomobject]@{
                        pfs = [string]$cryptoSets[0].PerfectForwardSecrecyGroup
                        proposals = @(foreach ($proposal in @($cryptoSets[0].Proposal)) {
                            [pscustomobject]@{
                                encapsulation = [string]$proposal.Encapsulation
                                encryption = [string]$proposal.Encryption
                                esp_hash = [string]$proposal.ESPHash
                                ah_hash = [string]$proposal.AHHash
                            }
                        })
                    }
                }
            }
            # The peers this host has a main mode SA with, read only when the rule is to move to Require.
            # [I] No SA at all is an empty answer of the GetAll parameter set, not an error.
            $mainModePeers = $null
            if ($Desired.sa) {
                $mainModePeers = @(foreach ($sa in @(Get-NetIPsecMainModeSA)) { [string]$sa.RemoteEndpoint })
            }
            [pscustomobject]@{
                rules = $rules
                phase1 = $phase1
                quickmode = $quickmode
                resolved = $resolved
                main_mode_peers = $mainModePeers
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
