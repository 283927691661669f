"""Worker programs that tests start as separate OS processes (see `tests.procs`)."""
