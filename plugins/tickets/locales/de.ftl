# Die Texte des Plugins tickets (Deutsch).

# Einstellungen im Dashboard.
config-enabled = Tickets an
