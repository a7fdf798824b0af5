# Die Texte des Core-Plugins (Deutsch).

about = Heimdall { $version }, aktive Plugins: { $plugins }
