# Die Texte des Plugins minecraft (Deutsch).

# Einstellungen im Dashboard.
config-enabled = Minecraft-Verknüpfung an
config-host = Serveradresse
config-rconPort = RCON-Port
config-rconPassword = RCON-Passwort
