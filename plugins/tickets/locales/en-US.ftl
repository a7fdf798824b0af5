# The tickets plugin's strings (English).

# Settings on the dashboard.
config-enabled = Tickets on
