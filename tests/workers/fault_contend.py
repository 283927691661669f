"""Worker: one of several processes writing into the same session, run and usage rollups at once.

Usage: python -m tests.workers.fault_contend SESSION_ID RUN_ID ROUTE_ALIAS TAG COUNT GO_FILE

After Django is set up it prints `ready` and waits until GO_FILE exists, so that every worker
starts writing at the same moment. Then COUNT times: append a message (client id `TAG-<n>`, an
explicit token count), record a usage event (request id `TAG-<n>`, same session and route, so
every worker adds to the same day, session and all-time rollup rows) and append a trace event to
the shared run, printing `ack <n> <seq> <event index>` after the three commits returned, and
`done` at the end.
"""

from __future__ import annotations

import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.workers.setup import django_setup

GO_WAIT_SECONDS = 120


@dataclass(frozen=True)
class PlannedWrite:
    """What worker `tag` writes in its round `n`: the message's token count and the usage counts."""

    message_tokens: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int


def planned_write(tag: str, n: int) -> PlannedWrite:
    """Derived from `tag` and `n`, so the test recomputes exactly what the worker was told to write."""
    seed = zlib.crc32(f"{tag}-{n}".encode())
    input_tokens = 50 + seed % 9_000
    output_tokens = seed % 1_500
    return PlannedWrite(
        message_tokens=1 + seed % 400,
        input_tokens=input_tokens,
        cached_input_tokens=seed % (input_tokens + 1),
        output_tokens=output_tokens,
        reasoning_tokens=seed % (output_tokens + 1),
    )


def _wait_for(go_file: Path) -> None:
    deadline = time.monotonic() + GO_WAIT_SECONDS
    while not go_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{go_file} did not appear within {GO_WAIT_SECONDS}s")
        time.sleep(0.005)


def main(session_id: str, run_id: str, route_alias: str, tag: str, count: int, go_file: Path) -> None:
    django_setup()
    from core.conversation.services import message_append, run_event_append
    from telemetry.services import usage_record
    from tests.owners import op_user

    print("ready", flush=True)
    _wait_for(go_file)
    for n in range(count):
        plan = planned_write(tag, n)
        appended = message_append(
            session_id=session_id,
            role="assistant",
            content=f"{tag} writes {n}",
            token_count=plan.message_tokens,
            client_id=f"{tag}-{n}",
        )
        usage_record(
            owner=op_user(),
            request_id=f"{tag}-{n}",
            route_alias=route_alias,
            session_id=session_id,
            input_tokens=plan.input_tokens,
            cached_input_tokens=plan.cached_input_tokens,
            output_tokens=plan.output_tokens,
            reasoning_tokens=plan.reasoning_tokens,
        )
        event = run_event_append(run_id=run_id, event_type="text_delta", payload={"text": f"{tag}:{n};"})
        print(f"ack {n} {appended.record.seq} {event.index}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), Path(sys.argv[6]))
