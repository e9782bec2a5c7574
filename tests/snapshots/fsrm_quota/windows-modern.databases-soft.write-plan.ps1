$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=fsrm_quota op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-soft","n":0,"data":{"path":"D:\\ExchangeDatabases\\DB01","create":true,"size":536870912000,"soft_limit":true,"disabled":false,"description":"hardening: database folder growth (soft, never blocks)"}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            if ([bool]$Desired.create) {
                $soft = [bool]$Desired.soft_limit
                $disabled = [bool]$Desired.disabled
                if ($null -ne $Desired.PSObject.Properties['description']) {
                    $null = New-FsrmQuota -Path $path -Size ([uint64]$Desired.size) -SoftLimit:$soft -Disabled:$disabled -Description ([string]$Desired.description)
                } else {
                    $null = New-FsrmQuota -Path $path -Size ([uint64]$Desired.size) -SoftLimit:$soft -Disabled:$disabled
                }
            } else {
                $wanted = $path.TrimEnd('\')
                $quotas = @(Get-FsrmQuota | Where-Object -FilterScript { ([string]$_.Path).TrimEnd('\') -eq $wanted })
                if ($quotas.Count -eq 0) {
                    throw "No FSRM quota exists on $path."
                }
                $quota = $quotas[0]
                if ($null -ne $Desired.PSObject.Properties['size']) {
                    $null = Set-FsrmQuota -InputObject $quota -Size ([uint64]$Desired.size)
                }
                if ($null -ne $Desired.PSObject.Properties['soft_limit']) {
                    $soft = [bool]$Desired.soft_limit
                    $null = Set-FsrmQuota -InputObject $quota -SoftLimit:$soft
                }
                if ($null -ne $Desired.PSObject.Properties['disabled']) {
                    $disabled = [bool]$Desired.disabled
                    $null = Set-FsrmQuota -InputObject $quota -Disabled:$disabled
                }
                if ($null -ne $Desired.PSObject.Properties['description']) {
                    $null = Set-FsrmQuota -InputObject $quota -Description ([string]$Desired.description)
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
# hardening:call kind=fsrm_quota op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-soft","n":1,"data":{"path":"D:\\ExchangeDatabases\\DB02","create":true,"size":536870912000,"soft_limit":true,"disabled":false,"description":"hardening: database folder growth (soft, never blocks)"}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            if ([bool]$Desired.create) {
                $soft = [bool]$Desired.soft_limit
                $disabled = [bool]$Desired.disabled
                if ($null -ne $Desired.PSObject.Properties['description']) {
                    $null = New-FsrmQuota -Path $path -Size ([uint64]$Desired.size) -SoftLimit:$soft -Disabled:$disabled -Description ([string]$Desired.description)
                } else {
                    $null = New-FsrmQuota -Path $path -Size ([uint64]$Desired.size) -SoftLimit:$soft -Disabled:$disabled
                }
            } else {
                $wanted = $path.TrimEnd('\')
                $quotas = @(Get-FsrmQuota | Where-Object -FilterScript { ([string]$_.Path).TrimEnd('\') -eq $wanted })
                if ($quotas.Count -eq 0) {
                    throw "No FSRM quota exists on $path."
                }
                $quota = $quotas[0]
                if ($null -ne $Desired.PSObject.Properties['size']) {
                    $null = Set-FsrmQuota -InputObject $quota -Size ([uint64]$Desired.size)
                }
                if ($null -ne $Desired.PSObject.Properties['soft_limit']) {
                    $soft = [bool]$Desired.soft_limit
                    $null = Set-FsrmQuota -InputObject $quota -SoftLimit:$soft
                }
                if ($null -ne $Desired.PSObject.Properties['disabled']) {
                    $disabled = [bool]$Desired.disabled
                    $null = Set-FsrmQuota -InputObject $quota -Disabled:$disabled
                }
                if ($null -ne $Desired.PSObject.Properties['description']) {
                    $null = Set-FsrmQuota -InputObject $quota -Description ([string]$Desired.description)
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
