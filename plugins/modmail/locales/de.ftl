# Die Texte des Plugins modmail (Deutsch).

# Einstellungen im Dashboard.
config-enabled = Modmail an
