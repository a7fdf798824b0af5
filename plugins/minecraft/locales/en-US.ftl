# The minecraft plugin's strings (English).

# Settings on the dashboard.
config-enabled = Minecraft link on
config-host = Server address
config-rconPort = RCON port
config-rconPassword = RCON password
