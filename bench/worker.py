"""A worker process for the concurrency workload: appends COUNT messages to one session.

Usage: python -m bench.worker SESSION_ID COUNT TAG. It prints `ready` once Django is set up and
its connection open, waits for a line on stdin (so every worker starts at once), appends through
`message_append`, and prints `done ERRORS` (each failed append is counted and reported on stderr).
"""

from __future__ import annotations

import os
import sys


def main(session_id: str, count: int, tag: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentchat_site.settings")
    import django

    django.setup()
    from django.db import connection

    from bench.peers import message_text
    from core.conversation.services import message_append

    connection.ensure_connection()
    print("ready", flush=True)
    sys.stdin.readline()
    errors = 0
    for index in range(count):
        try:
            message_append(session_id=session_id, role="user", content=message_text(index))
        except Exception as exc:  # every failure is counted; the workload's verdict needs zero
            errors += 1
            print(f"{tag} append {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"done {errors}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
