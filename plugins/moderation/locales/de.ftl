# Die Texte des Moderations-Plugins (Deutsch).

warned = { $member } wurde verwarnt (Fall #{ $case }).

# Einstellungen im Dashboard.
config-muteRoleId = Stummschalt-Rolle
config-modLogChannelId = Mod-Log-Kanal
config-automodEnabled = Automod an
