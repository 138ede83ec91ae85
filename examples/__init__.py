"""Example consumers of memberstream's outputs (not part of the installed package)."""
