"""Telemetry: normalized token usage events and the rollups the UI reads."""
