"""Worker: write a whole conversation (messages, a checkpoint, a finished run), acknowledging each write.

Usage: python -m tests.workers.conversation_write SESSION_ID MESSAGES

Prints `ack message <seq>`, `ack checkpoint <id>`, `ack run <id>` after each commit returns, then exits.
"""

from __future__ import annotations

import sys

from tests.workers.setup import django_setup


def main(session_id: str, count: int) -> None:
    django_setup()
    from core.conversation.services import checkpoint_create, message_append, run_create, run_event_append, run_finish

    for n in range(1, count + 1):
        result = message_append(session_id=session_id, role="user", content=f"line {n}", client_id=f"m-{n}")
        print(f"ack message {result.record.seq}", flush=True)
    checkpoint = checkpoint_create(
        session_id=session_id, through_seq=count // 2, reason="compaction", summary="first half", state={"n": count}
    )
    print(f"ack checkpoint {checkpoint.pk}", flush=True)
    run = run_create(session_id=session_id, status="running")
    for word in ("durable ", "and ", "ordered"):
        run_event_append(run_id=run.id, event_type="text_delta", payload={"text": word})
    run_finish(run_id=run.id, status="completed")
    print(f"ack run {run.id}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
