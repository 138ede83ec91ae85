"""The command line and dev tooling (top layer): the click CLI, its command groups and
the local development broker. May import every layer below."""
