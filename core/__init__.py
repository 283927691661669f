"""Core: configuration records and the conversation store (sessions, messages, checkpoints, runs)."""
