"""Worker: run the compaction task of one session and print `outcome <outcome>`.

Usage: python -m tests.workers.compact SESSION_ID
"""

from __future__ import annotations

import sys

from tests.workers.setup import django_setup


def main(session_id: str) -> None:
    django_setup()
    from runtime.upkeep import session_compact

    print("started", flush=True)
    result = session_compact(session_id=session_id)
    print(f"outcome {result.outcome}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
