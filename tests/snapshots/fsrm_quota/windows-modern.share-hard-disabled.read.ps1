$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=fsrm_quota op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"share-hard-disabled","n":0,"data":{"path":"F:\\Shares\\Archive"}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            if ($null -eq (Get-Command -Name 'Get-FsrmQuota' -ErrorAction 'SilentlyContinue')) {
                [pscustomobject]@{ fsrm = $false }
            } elseif (-not (Test-Path -LiteralPath $path -PathType 'Container')) {
                [pscustomobject]@{ fsrm = $true; exists = $false }
            } else {
                $wanted = $path.TrimEnd('\')
                $quotas = @(Get-FsrmQuota | Where-Object -FilterScript { ([string]$_.Path).TrimEnd('\') -eq $wanted })
                if ($quotas.Count -eq 0) {
                    [pscustomobject]@{ fsrm = $true; exists = $true; quota = $null }
                } else {
                    $quota = $quotas[0]
                    [pscustomobject]@{
                        fsrm = $true
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
