# The suggestions plugin's strings (English).

# Settings on the dashboard.
config-enabled = Suggestions on
config-channelId = Suggestions channel
