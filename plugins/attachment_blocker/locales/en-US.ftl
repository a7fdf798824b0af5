# The attachment blocker plugin's strings (English).

# Settings on the dashboard.
config-enabled = Attachment blocker on
