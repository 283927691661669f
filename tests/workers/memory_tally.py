"""Worker: write COUNT memories for user OWNER_ID (every third under a key already used, so an update)
and delete every fourth it created, printing `done` at the end.

Usage: python -m tests.workers.memory_tally OWNER_ID COUNT TAG
"""

from __future__ import annotations

import sys

from tests.workers.setup import django_setup


def main(owner_id: int, count: int, tag: str) -> None:
    django_setup()
    from django.contrib.auth import get_user_model

    from memory.services import memory_delete, memory_write

    owner = get_user_model().objects.get(pk=owner_id)
    for index in range(count):
        key = f"{tag}-{index - index % 3}"  # 0, 0, 0, 3, 3, 3, ...: the 2nd and 3rd of each update the 1st
        result = memory_write(owner=owner, kind="fact", content=f"{tag} fact {index}", key=key)
        if result.created and index % 4 == 0:
            memory_delete(memory_id=result.memory.pk, owner=owner)
    print("done", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
