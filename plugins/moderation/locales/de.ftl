# Die Texte des Moderations-Plugins (Deutsch).

warned = { $member } wurde verwarnt (Fall #{ $case }).

# Einstellungen im Dashboard.
config-muteRoleId = Stummschalt-Rolle
config-modLogChannelId = Mod-Log-Kanal
config-automodEnabled = Automod an
warn-dm = ⚠️ Du hast eine Verwarnung erhalten (Fall #{ $case }). Grund: { $reason }
warn-log = ⚠️ **Fall #{ $case }** · Verwarnung · { $member } von { $moderator } · { $reason }
