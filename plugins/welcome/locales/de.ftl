# Die Texte des Plugins welcome (Deutsch).

# Einstellungen im Dashboard.
config-enabled = Begrüßung an
config-channelId = Kanal
config-message = Begrüßungstext
config-leaveMessage = Abschiedstext
