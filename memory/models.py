"""Records of the memory app."""
