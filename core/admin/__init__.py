"""Admin for core's records; each area registers its own ModelAdmins."""
