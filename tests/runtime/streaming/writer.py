"""Worker: append text deltas to a running run from another process, then finish it.

Usage: python -m tests.runtime.streaming.writer RUN_ID COUNT DELAY_MS

Each delta is its own committed transaction (as a turn stores them); `ack <index>` is printed after
each commit, and `done` once the run is `completed`.
"""

from __future__ import annotations

import sys
import time

from tests.workers.setup import django_setup


def main(run_id: str, count: int, delay_ms: int) -> None:
    django_setup()
    from core.conversation.services import run_event_append, run_finish

    for n in range(count):
        time.sleep(delay_ms / 1000)
        event = run_event_append(run_id=run_id, event_type="text_delta", payload={"text": f"<{n}>"})
        print(f"ack {event.index}", flush=True)
    run_finish(run_id=run_id, status="completed")
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
