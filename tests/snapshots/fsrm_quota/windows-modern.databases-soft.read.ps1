$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=fsrm_quota op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-soft","n":0,"data":{"path":"D:\\ExchangeDatabases\\DB01"}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            $service = Get-Service -Name 'SrmSvc' -ErrorAction 'SilentlyContinue'
            $status = if ($null -eq $service) { $null } else { [string]$service.Status }
            $module = $null -ne (Get-Command -Name 'Get-FsrmQuota' -ErrorAction 'SilentlyContinue')
            if (($null -eq $status) -or (-not $module)) {
                [pscustomobject]@{ service = $status; module = $module }
            } elseif (-not (Test-Path -LiteralPath $path -PathType 'Container')) {
                [pscustomobject]@{ service = $status; module = $module; exists = $false }
            } else {
                $wanted = $path.TrimEnd('\')
                $quotas = @(Get-FsrmQuota | Where-Object -FilterScript { ([string]$_.Path).TrimEnd('\') -eq $wanted })
                if ($quotas.Count -eq 0) {
                    [pscustomobject]@{ service = $status; module = $module; exists = $true; quota = $null }
                } else {
                    $quota = $quotas[0]
                    [pscustomobject]@{
                        service = $status
                        module = $module
                        exists = $true
                        quota = [pscustomobject]@{
                            path = [string]$quota.Path
                            size = [uint64]$quota.Size
                            soft_limit = [bool]$quota.SoftLimit
                            disabled = [bool]$quota.Disabled
                            description = [string]$quota.Description
                            template = [string]$quota.Template
                            usage = [uint64]$quota.Usage
                        }
                    }
                }
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
# hardening:call kind=fsrm_quota op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"databases-soft","n":1,"data":{"path":"D:\\ExchangeDatabases\\DB02"}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            $service = Get-Service -Name 'SrmSvc' -ErrorAction 'SilentlyContinue'
            $status = if ($null -eq $service) { $null } else { [string]$service.Status }
            $module = $null -ne (Get-Command -Name 'Get-FsrmQuota' -ErrorAction 'SilentlyContinue')
            if (($null -eq $status) -or (-not $module)) {
                [pscustomobject]@{ service = $status; module = $module }
            } elseif (-not (Test-Path -LiteralPath $path -PathType 'Container')) {
                [pscustomobject]@{ service = $status; module = $module; exists = $false }
            } else {
                $wanted = $path.TrimEnd('\')
                $quotas = @(Get-FsrmQuota | Where-Object -FilterScript { ([string]$_.Path).TrimEnd('\') -eq $wanted })
                if ($quotas.Count -eq 0) {
                    [pscustomobject]@{ service = $status; module = $module; exists = $true; quota = $null }
                } else {
                    $quota = $quotas[0]
                    [pscustomobject]@{
                        service = $status
                        module = $module
                        exists = $true
                        quota = [pscustomobject]@{
                            path = [string]$quota.Path
                            size = [uint64]$quota.Size
                            soft_limit = [bool]$quota.SoftLimit
                            disabled = [bool]$quota.Disabled
                            description = [string]$quota.Description
                            template = [string]$quota.Template
                            usage = [uint64]$quota.Usage
                        }
                    }
                }
            }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
