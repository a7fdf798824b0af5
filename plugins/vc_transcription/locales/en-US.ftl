# The voice transcription plugin's strings (English).

# Settings on the dashboard.
config-enabled = Transcription on
