# Die Texte des Dashboard-Plugins (Deutsch).

# In Discord noch nichts: seine Texte stehen im Dashboard (locales/dashboard.*.json).
access-title = Zugriff aufs Dashboard
