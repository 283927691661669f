"""Worker: open many database connections one after another, each doing one append, and report
what stays alive.

Usage: python -m tests.workers.connection_churn SESSION_ID WARMUP COUNT PARALLEL

Each round runs on a new thread (PARALLEL of them at a time), so it gets a new connection (Django
keeps one per thread, as runserver's request threads do): append one message, then either `connection.close()` (even
rounds) or nothing, leaving the connection to die with its thread as a persistent connection
(`CONN_MAX_AGE`) of a finished request thread does (odd rounds). After WARMUP rounds and again
after COUNT more, it prints one JSON line: the live `BaseDatabaseWrapper` objects (after
`gc.collect()`), the open file descriptors (`/proc/self/fd`) and the resident memory (kB).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading

from tests.workers.setup import django_setup

COLLECT_EVERY = 64


def _measure() -> dict[str, int]:
    from django.db.backends.base.base import BaseDatabaseWrapper

    gc.collect()
    wrappers = sum(1 for item in gc.get_objects() if isinstance(item, BaseDatabaseWrapper))
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return {
        "wrappers": wrappers,
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_kb": rss_pages * os.sysconf("SC_PAGE_SIZE") // 1024,
    }


def main(session_id: str, warmup: int, count: int, parallel: int) -> None:
    django_setup()
    from django.db import connection

    from core.conversation.services import message_append

    failures: list[BaseException] = []

    def one_round(index: int) -> None:
        try:
            message_append(session_id=session_id, role="user", content=f"round {index}")
            if index % 2 == 0:
                connection.close()
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    def rounds(start: int, stop: int) -> None:
        for first in range(start, stop, parallel):
            threads = [
                threading.Thread(target=one_round, args=(index,)) for index in range(first, min(first + parallel, stop))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if failures:
                raise RuntimeError(f"rounds from {first} failed: {failures[0]!r}") from failures[0]
            if first % COLLECT_EVERY < parallel:
                # A connection left open is freed with its wrapper, which sits in reference cycles
                # (wrapper <-> ops, features, …): only the cycle collector frees it, and it may
                # wait longer than the server's connection slots last. Run it as time passes.
                gc.collect()

    rounds(0, warmup)
    before = _measure()
    rounds(warmup, warmup + count)
    after = _measure()
    print(json.dumps({"before": before, "after": after}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
