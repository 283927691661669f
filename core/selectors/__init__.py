"""Selectors: typed reads with their joins already applied."""
