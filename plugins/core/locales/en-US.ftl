# The core plugin's strings (English).

about = Heimdall { $version }, running plugins: { $plugins }

# Settings on the dashboard.
config-prefix = Command prefix
config-locale = Language
