$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# hardening:call kind=volume_quota op=write
& {
    $Call = ConvertFrom-Json -InputObject '{"id":"drive-enforce-script-center-numbering","n":0,"data":{"path":"F:\\","state":1,"default_warning_limit":943718400,"default_limit":1073741824}}'
    $Desired = $Call.data
    try {
        $State = & {
            $path = [string]$Desired.path
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
                throw "No volume holds $path."
            }
            $root = [string]$volume.Name
            $settings = @(Get-CimInstance -ClassName 'Win32_QuotaSetting' | Where-Object -FilterScript {
                ([string]$_.VolumePath).TrimEnd('\') -eq $root.TrimEnd('\')
            })
            if ($settings.Count -eq 0) {
                throw "The volume $root has no NTFS disk quotas."
            }
            $properties = @{}
            if ($null -ne $Desired.PSObject.Properties['state']) {
                $properties['State'] = [uint32]$Desired.state
            }
            if ($null -ne $Desired.PSObject.Properties['default_limit']) {
                $properties['DefaultLimit'] = [int64]$Desired.default_limit
            }
            if ($null -ne $Desired.PSObject.Properties['default_warning_limit']) {
                $properties['DefaultWarningLimit'] = [int64]$Desired.default_warning_limit
            }
            if ($null -ne $Desired.PSObject.Properties['exceeded_notification']) {
                $properties['ExceededNotification'] = [bool]$Desired.exceeded_notification
            }
            if ($null -ne $Desired.PSObject.Properties['warning_exceeded_notification']) {
                $properties['WarningExceededNotification'] = [bool]$Desired.warning_exceeded_notification
            }
            Set-CimInstance -InputObject $settings[0] -Property $properties
            [pscustomobject]@{ written = $true; volume = $root }
        }
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $true; state = $State }
    } catch {
        $Record = [pscustomobject]@{ id = $Call.id; n = $Call.n; ok = $false; error = $_.Exception.Message }
    }
    ConvertTo-Json -InputObject $Record -Compress -Depth 16
}
