# Die Texte des Plugins attachment blocker (Deutsch).

# Einstellungen im Dashboard.
config-enabled = Anhangsblocker an
