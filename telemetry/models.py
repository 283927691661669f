"""Records of the telemetry app."""
