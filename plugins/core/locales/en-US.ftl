# The core plugin's strings (English).

about = Heimdall { $version }, running plugins: { $plugins }
