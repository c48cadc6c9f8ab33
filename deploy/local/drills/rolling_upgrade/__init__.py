"""The rolling-upgrade drill: see ``drill``."""
