"""The runtime contract: typed events a provider adapter streams, and the adapters themselves."""
