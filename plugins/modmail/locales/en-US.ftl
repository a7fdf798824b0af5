# The modmail plugin's strings (English).

# Settings on the dashboard.
config-enabled = Modmail on
