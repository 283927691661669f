"""Admin for the telemetry app."""
