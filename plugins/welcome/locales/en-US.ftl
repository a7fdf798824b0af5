# The welcome plugin's strings (English).

# Settings on the dashboard.
config-enabled = Greetings on
config-channelId = Channel
config-message = Welcome message
config-leaveMessage = Goodbye message
