# The moderation plugin's strings (English).

warned = { $member } was warned (case #{ $case }).

# Settings on the dashboard.
config-muteRoleId = Mute role
config-modLogChannelId = Mod log channel
config-automodEnabled = Automod on
warn-dm = ⚠️ You received a warning (case #{ $case }). Reason: { $reason }
warn-log = ⚠️ **Case #{ $case }** · warn · { $member } by { $moderator } · { $reason }
