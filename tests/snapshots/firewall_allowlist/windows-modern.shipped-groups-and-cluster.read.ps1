$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=firewall_allowlist op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"shipped-groups-and-cluster","n":0,"data":{"names":["hardening-smtp","hardening-submission","hardening-http","hardening-https","hardening-pop3","hardening-pop3s","hardening-imap4","hardening-imap4s","hardening-exchange-peers","hardening-cluster-udp","hardening-cluster-tcp","hardening-management","hardening-rdp-admin","hardening-snmp"],"cluster_groups":["Failover Clusters"],"cluster_service":"ClusSvc","resolve":[]}}'
    $Desired = $Call.data
    try {
        $State = & {
            $names = @($Desired.names)
            $clusterGroups = @($Desired.cluster_groups)
            $resolved = @{}
            foreach ($hostName in @($Desired.resolve)) {
                $resolved[[string]$hostName] = @(foreach ($ip in [System.Net.Dns]::GetHostAddresses([string]$hostName)) { $ip.IPAddressToString })
            }
            # One query per filter type for all rules, joined by InstanceID (a pipe per rule is one query each).
            $portFilters = @{}
            foreach ($filter in @(Get-NetFirewallPortFilter -All -PolicyStore 'ActiveStore')) {
                $portFilters[[string]$filter.InstanceID] = $filter
            }
            $addressFilters = @{}
            foreach ($filter in @(Get-NetFirewallAddressFilter -All -PolicyStore 'ActiveStore')) {
                $addressFilters[[string]$filter.InstanceID] = $filter
            }
            $programFilters = @{}
            foreach ($filter in @(Get-NetFirewallApplicationFilter -All -PolicyStore 'ActiveStore')) {
                $programFilters[[string]$filter.InstanceID] = $filter
            }
            $rules = @(foreach ($rule in @(Get-NetFirewallRule -PolicyStore 'ActiveStore' -Direction 'Inbound')) {
                $isOpen = ([string]$rule.Enabled -eq 'True') -and ([string]$rule.Action -eq 'Allow')
                # The clustering group's rules are read even when disabled: their presence tells a cluster node.
                $isCluster = ($clusterGroups -contains [string]$rule.DisplayGroup) -or ($clusterGroups -contains [string]$rule.Group)
                if (-not $isOpen -and -not $isCluster -and -not ($names -contains [string]$rule.Name)) {
                    continue
                }
                $id = [string]$rule.InstanceID
                $ports = $portFilters[$id]
                $addresses = $addressFilters[$id]
                $program = $programFilters[$id]
                [pscustomobject]@{
                    name = [string]$rule.Name
                    display_name = [string]$rule.DisplayName
                    enabled = [string]$rule.Enabled
                    direction = [string]$rule.Direction
                    action = [string]$rule.Action
                    profile = [string]$rule.Profile
                    source_type = [string]$rule.PolicyStoreSourceType
                    protocol = [string]$ports.Protocol
                    local_ports = @($ports.LocalPort)
                    remote_addresses = @($addresses.RemoteAddress)
                    program = [string]$program.Program
                    group = [string]$rule.Group
                    display_group = [string]$rule.DisplayGroup
                }
            })
            # The Cluster service: absent where Failover Clustering is not installed (not an error here).
            $cluster = [pscustomobject]@{ installed = $false; status = '' }
            foreach ($service in @(Get-Service -Name ([string]$Desired.cluster_service) -ErrorAction 'SilentlyContinue')) {
                $cluster = [pscustomobject]@{ installed = $true; status = [string]$service.Status }
            }
            $processNames = @{}
            foreach ($process in @(Get-Process)) {
                $processNames[[int]$process.Id] = [string]$process.ProcessName
            }
            $serviceNames = @{}
            foreach ($service in @(Get-CimInstance -ClassName 'Win32_Service')) {
                $owner = [int]$service.ProcessId
                if ($owner -ne 0) {
                    if (-not $serviceNames.ContainsKey($owner)) {
                        $serviceNames[$owner] = New-Object -TypeName 'System.Collections.Generic.List[string]'
                    }
                    $serviceNames[$owner].Add([string]$service.Name)
                }
            }
            # No listener at all is not an error here (the cmdlet reports "no objects found" as one).
            $listeners = @(foreach ($connection in @(Get-NetTCPConnection -State 'Listen' -ErrorAction 'SilentlyContinue')) {
                $owner = [int]$connection.OwningProcess
                $services = @()
                if ($serviceNames.ContainsKey($owner)) {
                    $services = @($serviceNames[$owner])
                }
                [pscustomobject]@{
                    protocol = 'TCP'
                    address = [string]$connection.LocalAddress
                    port = [int]$connection.LocalPort
                    process = [string]$processNames[$owner]
                    services = $services
                }
            })
            $profiles = @(foreach ($item in @(Get-NetFirewallProfile -PolicyStore 'ActiveStore')) {
                [pscustomobject]@{
                    name = [string]$item.Name
                    enabled = [string]$item.Enabled
                    default_inbound_action = [string]$item.DefaultInboundAction
                }
            })
            [pscustomobject]@{
                profiles = $profiles
                rules = $rules
                listeners = $listeners
                cluster = $cluster
                resolved = $resolved
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
