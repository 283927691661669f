"""Worker: append N messages to one session, printing each acknowledged seq as `ack <seq> <client_id>`.

Usage: python -m tests.workers.append SESSION_ID COUNT TAG
"""

from __future__ import annotations

import sys

from tests.workers.setup import django_setup


def main(session_id: str, count: int, tag: str) -> None:
    django_setup()
    from core.conversation.services import message_append

    for index in range(count):
        client_id = f"{tag}-{index}"
        result = message_append(session_id=session_id, role="user", content=f"{tag} says {index}", client_id=client_id)
        # Printed only after the commit returned: an "ack" line is a durable write.
        print(f"ack {result.record.seq} {client_id}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
