"""Worker: run one chat turn on a team's session whose lead asks a member that never finishes streaming.

Usage: python -m tests.workers.delegate_turn SESSION_ID REQUEST

Prints `turn` as it starts; the member's child run opens and waits in its provider's pause until the
test kills this process (SIGKILL), mid-delegation.
"""

from __future__ import annotations

import sys

from tests.workers.setup import django_setup


def main(session_id: str, request: str) -> None:
    django_setup()
    from runtime.turns import turn_run

    print("turn", flush=True)
    turn_run(session_id=session_id, user_text=request)
    print("finished", flush=True)  # only if nobody killed it: the test then fails on the run's state


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
