# The moderation plugin's strings (English).

warned = { $member } was warned (case #{ $case }).

# Settings on the dashboard.
config-muteRoleId = Mute role
config-modLogChannelId = Mod log channel
config-automodEnabled = Automod on
