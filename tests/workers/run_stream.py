"""Worker: open a running run, stream some deltas, then either finish or hang until killed.

Usage: python -m tests.workers.run_stream SESSION_ID DELTAS (finish|hang)

Prints `run <id>` once the run is committed, `ack <index>` after each committed event, and
`ready` when it has streamed everything (then, with `hang`, sleeps until the test kills it).
"""

from __future__ import annotations

import sys
import time

from tests.workers.setup import django_setup


def main(session_id: str, deltas: int, mode: str) -> None:
    django_setup()
    from core.conversation.services import run_create, run_event_append, run_finish

    run = run_create(session_id=session_id, status="running")
    print(f"run {run.id}", flush=True)
    for n in range(deltas):
        event = run_event_append(run_id=run.id, event_type="text_delta", payload={"text": f"<{n}>"})
        print(f"ack {event.index}", flush=True)
    if mode == "finish":
        run_finish(run_id=run.id, status="completed")
    print("ready", flush=True)
    if mode == "hang":
        # Stay alive (holding no transaction) until the test sends SIGKILL.
        time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
