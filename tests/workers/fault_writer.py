"""Worker: stream messages, usage events and trace events into one session and run until killed.

Usage: python -m tests.workers.fault_writer SESSION_ID ROUTE_ALIAS TAG ROUNDS

Opens a `running` run and prints `run <id>`. Then, round after round, it appends a message, records
a usage event (request id `TAG-<n>`, on the same session and run) and appends a `text_delta` trace
event, printing after each commit returned:

    ack message <seq> <client_id> <token_count>
    ack usage <request_id>
    ack event <index>

An `ack` line therefore names a durable write. The crash test reads them and kills the process
with SIGKILL while the next write is in flight; ROUNDS only bounds a run nobody kills.
"""

from __future__ import annotations

import sys
import zlib
from typing import TypedDict

from tests.workers.setup import django_setup


class UsageCounts(TypedDict):
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int


def round_usage(request_id: str) -> UsageCounts:
    """The token counts reported for `request_id` (derived from it, so a test can recompute them)."""
    seed = zlib.crc32(request_id.encode())
    input_tokens = 100 + seed % 20_000
    output_tokens = 1 + seed % 2_000
    return {
        "input_tokens": input_tokens,
        "cached_input_tokens": seed % (input_tokens // 2 + 1),
        "output_tokens": output_tokens,
        "reasoning_tokens": seed % (output_tokens + 1),
    }


def main(session_id: str, route_alias: str, tag: str, rounds: int) -> None:
    django_setup()
    from core.conversation.services import message_append, run_create, run_event_append
    from telemetry.services import usage_record
    from tests.owners import op_user

    run = run_create(session_id=session_id, status="running")
    print(f"run {run.id}", flush=True)
    for n in range(rounds):
        client_id = f"{tag}-m{n}"
        # Uneven sizes so that the session's token counter means something.
        appended = message_append(
            session_id=session_id, role="user", content=f"{tag} round {n} " + "x" * (n % 97), client_id=client_id
        )
        print(f"ack message {appended.record.seq} {client_id} {appended.record.token_count}", flush=True)
        request_id = f"{tag}-{n}"
        usage_record(
            owner=op_user(),
            request_id=request_id,
            route_alias=route_alias,
            session_id=session_id,
            run_id=run.id,
            latency_ms=n,
            **round_usage(request_id),
        )
        print(f"ack usage {request_id}", flush=True)
        event = run_event_append(run_id=run.id, event_type="text_delta", payload={"text": f"<{n}>"})
        print(f"ack event {event.index}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
