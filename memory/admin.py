"""Admin for the memory app."""
