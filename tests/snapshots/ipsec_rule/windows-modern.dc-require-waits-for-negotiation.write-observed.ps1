$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=ipsec_rule op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"dc-require-waits-for-negotiation","n":0,"data":{"name":"hardening-dc-require","lower":[],"phase1":{"set":"hardening-dc-require-phase1","display_name":"hardening-dc-require-phase1 (hardening)","exists":false,"proposals":[{"method":"MachineKerberos"}]},"quickmode":null,"create":{"display_name":"hardening-dc-require","enabled":"True","key_module":"Default","inbound_security":"Request","outbound_security":"Request","profile":"Any","protocol":"TCP","local_ports":["Any"],"remote_ports":["389","636"],"local_addresses":["Any"],"remote_addresses":["10.0.20.1","10.0.20.2"],"phase1_auth_set":"hardening-dc-require-phase1","quick_mode_crypto_set":null},"steps":[]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $name = [string]$Desired.name
            # The sets: a new rule names its phase 1 set, which must exist before it.
            $writeSets = {
                $auth = $Desired.phase1
                if ($null -ne $auth) {
                    $offers = @(foreach ($proposal in @($auth.proposals)) {
                        if (([string]$proposal.method) -eq 'MachineCert') {
                            New-NetIPsecAuthProposal -Machine -Cert -Authority ([string]$proposal.authority) -AuthorityType ([string]$proposal.authority_type)
                        } else {
                            New-NetIPsecAuthProposal -Machine -Kerberos
                        }
                    })
                    if ($auth.exists) {
                        Set-NetIPsecPhase1AuthSet -Name ([string]$auth.set) -Proposal $offers -PolicyStore 'PersistentStore'
                    } else {
                        $null = New-NetIPsecPhase1AuthSet -Name ([string]$auth.set) -DisplayName ([string]$auth.display_name) -Proposal $offers -PolicyStore 'PersistentStore'
                    }
                }
                $crypto = $Desired.quickmode
                if ($null -ne $crypto) {
                    if ($null -ne $crypto.proposals) {
                        $offers = @(foreach ($proposal in @($crypto.proposals)) {
                            New-NetIPsecQuickModeCryptoProposal -Encapsulation ([string]$proposal.encapsulation) -Encryption ([string]$proposal.encryption) -ESPHash ([string]$proposal.esp_hash) -AHHash ([string]$proposal.ah_hash)
                        })
                        if ($crypto.exists) {
                            Set-NetIPsecQuickModeCryptoSet -Name ([string]$crypto.set) -Proposal $offers -PolicyStore 'PersistentStore'
                        } else {
                            $null = New-NetIPsecQuickModeCryptoSet -Name ([string]$crypto.set) -DisplayName ([string]$crypto.display_name) -Proposal $offers -PolicyStore 'PersistentStore'
                        }
                    }
                    if ($null -ne $crypto.pfs) {
                        Set-NetIPsecQuickModeCryptoSet -Name ([string]$crypto.set) -PerfectForwardSecrecyGroup ([string]$crypto.pfs) -PolicyStore 'PersistentStore'
                    }
                }
            }
            $new = $Desired.create
            if ($null -ne $new) {
                $null = & $writeSets
                # Everything in the one call that creates the rule: nothing narrows it afterwards.
                if ($null -eq $new.quick_mode_crypto_set) {
                    $null = New-NetIPsecRule -IPsecRuleName $name -DisplayName ([string]$new.display_name) -Enabled ([string]$new.enabled) -Mode 'Transport' -InboundSecurity ([string]$new.inbound_security) -OutboundSecurity ([string]$new.outbound_security) -KeyModule ([string]$new.key_module) -Profile ([string]$new.profile) -Protocol ([string]$new.protocol) -LocalPort @($new.local_ports) -RemotePort @($new.remote_ports) -LocalAddress @($new.local_addresses) -RemoteAddress @($new.remote_addresses) -Phase1AuthSet ([string]$new.phase1_auth_set) -PolicyStore 'PersistentStore'
                } else {
                    $null = New-NetIPsecRule -IPsecRuleName $name -DisplayName ([string]$new.display_name) -Enabled ([string]$new.enabled) -Mode 'Transport' -InboundSecurity ([string]$new.inbound_security) -OutboundSecurity ([string]$new.outbound_security) -KeyModule ([string]$new.key_module) -Profile ([string]$new.profile) -Protocol ([string]$new.protocol) -LocalPort @($new.local_ports) -RemotePort @($new.remote_ports) -LocalAddress @($new.local_addresses) -RemoteAddress @($new.remote_addresses) -Phase1AuthSet ([string]$new.phase1_auth_set) -QuickModeCryptoSet ([string]$new.quick_mode_crypto_set) -PolicyStore 'PersistentStore'
                }
            } else {
                # A direction at Require that goes through Request is lowered before its sets change.
                foreach ($step in @($Desired.lower)) {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -InboundSecurity ([string]$step.inbound_security) -OutboundSecurity ([string]$step.outbound_security)
                }
                $null = & $writeSets
                foreach ($step in @($Desired.steps)) {
                    $call = [string]$step.call
                    if ($call -eq 'enabled') {
                        Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Enabled ([string]$step.enabled)
                    } elseif ($call -eq 'scope') {
                        Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Mode 'Transport' -InboundSecurity ([string]$step.inbound_security) -OutboundSecurity ([string]$step.outbound_security) -KeyModule ([string]$step.key_module) -Profile ([string]$step.profile) -Protocol ([string]$step.protocol) -LocalPort @($step.local_ports) -RemotePort @($step.remote_ports) -LocalAddress @($step.local_addresses) -RemoteAddress @($step.remote_addresses) -Phase1AuthSet ([string]$step.phase1_auth_set)
                    } elseif ($call -eq 'quickmode') {
                        Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -QuickModeCryptoSet ([string]$step.quick_mode_crypto_set)
                    } elseif ($call -eq 'display') {
                        Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -NewDisplayName ([string]$step.display_name)
                    } else {
                        throw "ipsec_rule: unknown step $call"
                    }
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
