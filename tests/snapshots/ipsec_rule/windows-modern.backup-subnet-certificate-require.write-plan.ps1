$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=ipsec_rule op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"backup-subnet-certificate-require","n":0,"data":{"name":"hardening-backup-ipsec","phase1":{"set":"hardening-backup-ipsec-phase1","display_name":"hardening-backup-ipsec-phase1 (hardening)","exists":false,"proposals":[{"method":"MachineCert","authority":"DC=com, DC=contoso, CN=Contoso Root CA","authority_type":"Root"}]},"quickmode":null,"create":{"display_name":"hardening-backup-ipsec","inbound_security":"Require","outbound_security":"Require","key_module":"IKEv2","profile":"Domain","local_addresses":["Any"],"remote_addresses":["10.0.60.0/24"],"phase1_auth_set":"hardening-backup-ipsec-phase1","enabled":"True"},"steps":[{"property":"Protocol","value":"TCP"},{"property":"LocalPort","value":["10000","10100-10110"]},{"property":"RemotePort","value":["1024-65535"]}]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $name = [string]$Desired.name
            # The sets first: a new rule names its phase 1 set, which must exist.
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
            $new = $Desired.create
            if ($null -ne $new) {
                $null = New-NetIPsecRule -IPsecRuleName $name -DisplayName ([string]$new.display_name) -Mode 'Transport' -InboundSecurity ([string]$new.inbound_security) -OutboundSecurity ([string]$new.outbound_security) -KeyModule ([string]$new.key_module) -Profile ([string]$new.profile) -LocalAddress @($new.local_addresses) -RemoteAddress @($new.remote_addresses) -Phase1AuthSet ([string]$new.phase1_auth_set) -Enabled ([string]$new.enabled) -PolicyStore 'PersistentStore'
            }
            foreach ($step in @($Desired.steps)) {
                $property = [string]$step.property
                $value = $step.value
                if ($property -eq 'Protocol') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Protocol ([string]$value)
                } elseif ($property -eq 'LocalPort') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -LocalPort @($value)
                } elseif ($property -eq 'RemotePort') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -RemotePort @($value)
                } elseif ($property -eq 'LocalAddress') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -LocalAddress @($value)
                } elseif ($property -eq 'RemoteAddress') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -RemoteAddress @($value)
                } elseif ($property -eq 'Mode') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Mode ([string]$value)
                } elseif ($property -eq 'InboundSecurity') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -InboundSecurity ([string]$value)
                } elseif ($property -eq 'OutboundSecurity') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -OutboundSecurity ([string]$value)
                } elseif ($property -eq 'KeyModule') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -KeyModule ([string]$value)
                } elseif ($property -eq 'Profile') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Profile ([string]$value)
                } elseif ($property -eq 'DisplayName') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -NewDisplayName ([string]$value)
                } elseif ($property -eq 'Phase1AuthSet') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Phase1AuthSet ([string]$value)
                } elseif ($property -eq 'QuickModeCryptoSet') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -QuickModeCryptoSet ([string]$value)
                } elseif ($property -eq 'Enabled') {
                    Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Enabled ([string]$value)
                } else {
                    throw "ipsec_rule: unknown property $property"
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
