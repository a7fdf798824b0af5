# Die Texte des Plugins voice transcription (Deutsch).

# Einstellungen im Dashboard.
config-enabled = Transkription an
