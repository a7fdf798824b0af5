# Die Texte des Plugins suggestions (Deutsch).

# Einstellungen im Dashboard.
config-enabled = Vorschläge an
config-channelId = Vorschlagskanal
