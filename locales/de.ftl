# Die Texte des Hosts (Deutsch). Jedes Plugin hat seine eigenen in plugins/<name>/locales/.

error-internal = In Heimdall ist etwas schiefgegangen. Der Fehler wurde protokolliert; bitte versuche es noch einmal oder bitte den Betreiber des Bots, die Logs anzusehen.
error-owner-only = Nur die Betreiber des Bots dürfen diesen Befehl verwenden.
discord-off = Discord ist aus: DISCORD_TOKEN ist nicht gesetzt. API, WebSocket-Gateway und Dashboard laufen auch ohne.
