"""Agent Chat: the Django project that stores what the agent runtime and its UI need."""
