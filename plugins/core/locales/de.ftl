# Die Texte des Core-Plugins (Deutsch).

about = Heimdall { $version }, aktive Plugins: { $plugins }

# Einstellungen im Dashboard.
config-prefix = Befehlspräfix
config-locale = Sprache
