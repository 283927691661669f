"""Turns in worker processes: the task (`tasks.run_turn`), the run's lease and its timer
(`lease.py`), the sweeper (`sweeper.py`), the worker loop (`loop.py`) and the supervisor that
`make serve` starts (`supervisor.py`)."""
