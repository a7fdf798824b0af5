# The host's strings (English). Each plugin keeps its own in plugins/<name>/locales/.

error-internal = Something went wrong inside Heimdall. The error was logged; please try again or ask the bot owner to check the logs.
error-owner-only = Only the bot's owners may use this command.
discord-off = Discord is off: DISCORD_TOKEN is not set. The API, the WebSocket gateway and the dashboard run without it.
