# Die Texte des Plugins temporary voice channels (Deutsch).

# Einstellungen im Dashboard.
config-hubChannelId = Hub-Sprachkanal
