"""Services: the only write path. Each is `<thing>_<verb>`, keyword-only, one transaction."""
