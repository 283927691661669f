"""Which OS process runs a run, and whether that process is still alive.

A run's `run_started` event records its worker: the host name, the pid and the process's start
(`boot_id:ticks`, from `/proc`), so a pid reused by another process after a crash, or after a
reboot, is not taken for the worker. Recovery (`runs_recover`) leaves alone a run whose worker is
alive on this host; a run from another host, or without a recorded worker, is judged by age alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

PROC = Path("/proc")


@cache
def _boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """`boot_id:ticks` for a running process (its start time in clock ticks since boot); "" if unknown."""
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses; fields after its last ")" are fixed.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return ""
    return f"{_boot_id()}:{fields[19]}"


def worker_identity() -> dict[str, Any]:
    """This process as a `run_started` payload's worker fields."""
    identity: dict[str, Any] = {"worker_host": socket.gethostname() or "unknown", "worker_pid": os.getpid()}
    start = process_start(os.getpid())
    if start:
        identity["worker_start"] = start
    return identity


def worker_alive(payload: Mapping[str, Any]) -> bool:
    """Whether the worker a `run_started` payload names is a live process on this host."""
    host, pid, start = payload.get("worker_host"), payload.get("worker_pid"), payload.get("worker_start")
    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    current = process_start(pid)
    if not current:
        return False
    if _zombie(pid):
        return False
    return not start or current == start


def _zombie(pid: int) -> bool:
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    state = stat[stat.rfind(")") + 2 :].split()[:1]
    return state in (["Z"], ["X"])
