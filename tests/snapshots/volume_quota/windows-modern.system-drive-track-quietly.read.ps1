$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=volume_quota op=read
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"system-drive-track-quietly","n":0,"data":{"path":"C:\\"}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
            if (-not (Test-Path -LiteralPath $path)) {
                [pscustomobject]@{ exists = $false }
            } else {
                $full = (Get-Item -LiteralPath $path -Force).FullName.TrimEnd('\') + '\'
                $volume = $null
                foreach ($candidate in @(Get-CimInstance -ClassName 'Win32_Volume')) {
                    $name = [string]$candidate.Name
                    if ($name -and $full.StartsWith($name, [System.StringComparison]::OrdinalIgnoreCase)) {
                        if ($null -eq $volume -or $name.Length -gt ([string]$volume.Name).Length) {
                            $volume = $candidate
                        }
                    }
                }
                if ($null -eq $volume) {
                    [pscustomobject]@{ exists = $true; volume = $null }
                } else {
                    $root = [string]$volume.Name
                    $settings = @(Get-CimInstance -ClassName 'Win32_QuotaSetting' | Where-Object -FilterScript {
                        ([string]$_.VolumePath).TrimEnd('\') -eq $root.TrimEnd('\')
                    })
                    if ($settings.Count -eq 0) {
                        [pscustomobject]@{ exists = $true; volume = $root; file_system = [string]$volume.FileSystem; supported = $false }
                    } else {
                        $setting = $settings[0]
                        [pscustomobject]@{
                            exists = $true
                            volume = $root
                            file_system = [string]$volume.FileSystem
                            supported = $true
                            state = [int64]$setting.State
                            default_limit = [int64]$setting.DefaultLimit
                            default_warning_limit = [int64]$setting.DefaultWarningLimit
                            exceeded_notification = [bool]$setting.ExceededNotification
                            warning_exceeded_notification = [bool]$setting.WarningExceededNotification
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
