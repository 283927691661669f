"""Memory: daily episodes, long-term memory with full-text search, attachment summaries."""
