"""Connections are released: a process that opens thousands of connections one after another (a
new one per thread, as runserver's request threads do), each appending one message, keeps a flat
count of live connection objects, of open file descriptors and of resident memory.

Nothing may keep a reference to a connection after its thread is gone (a per-connection cache
keyed on it once kept every connection ever opened alive: in this test, 5,000 live wrappers, one
open file descriptor each and 700 MB more memory on SQLite; on PostgreSQL the server ran out of
connection slots).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from core.conversation.services import session_create
from core.models import Message, ModelRoute
from tests.fault.conftest import stop_if_running
from tests.owners import op_user
from tests.procs import start_worker

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WARMUP = 300
CONNECTIONS = 5_000
# A new PostgreSQL connection forks a server process and authenticates (about 15 ms on a busy
# 2-core machine), so the PostgreSQL run opens fewer to stay within a minute; a connection kept
# alive per round would still show as thousands of wrappers, and would run out of server slots.
CONNECTIONS_POSTGRESQL = 2_000
# Resident memory moves by allocator noise (up to about 10 MB seen over 5,000 threads); a retained
# SQLite connection held about 140 kB (96 MB -> 798 MB over 5,000 when one was kept per round).
RSS_SLACK_KB = 40 * 1024
# Rounds in flight at once: opening a PostgreSQL connection (a server process, authentication)
# takes several ms, so they overlap; every round still opens a connection of its own.
PARALLEL = 8
CHURN_SECONDS = 120


def test_5000_new_connections_leave_no_connection_fd_or_memory_behind(replay_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="churn")
    count = CONNECTIONS_POSTGRESQL if connection.vendor == "postgresql" else CONNECTIONS
    worker = start_worker("tests.workers.connection_churn", [str(session.id), str(WARMUP), str(count), str(PARALLEL)])
    try:
        out, err = worker.communicate(timeout=CHURN_SECONDS)
    finally:
        stop_if_running(worker)
    assert worker.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    before, after = report["before"], report["after"]
    print(f"connection churn, {count} connections on {connection.vendor}: {before} -> {after}")
    assert Message.objects.filter(session=session).count() == WARMUP + count
    # The main thread's connection (and one more at most) stays alive, not one per round.
    assert before["wrappers"] <= 2, report
    assert after["wrappers"] <= 2, report
    assert after["fds"] <= before["fds"] + 2, report
    assert after["rss_kb"] - before["rss_kb"] <= RSS_SLACK_KB, report
