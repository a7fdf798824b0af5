# The temporary voice channels plugin's strings (English).

# Settings on the dashboard.
config-hubChannelId = Hub voice channel
