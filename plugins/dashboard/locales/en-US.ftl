# The dashboard plugin's strings (English).

# Nothing in Discord yet: its strings are on the dashboard (locales/dashboard.*.json).
access-title = Dashboard access
