"""`MemoryTally`: each account's count of long-term memories (forgotten ones aside) equals the real
count after every write."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from core.errors import NotFoundError
from memory.models import LongTermMemory, MemoryKind, MemoryTally
from memory.selectors import memory_counts
from memory.services import (
    memory_delete,
    memory_forget,
    memory_pin,
    memory_restore,
    memory_tally_rebuild,
    memory_update,
    memory_write,
)
from tests.owners import op_user
from tests.procs import start_worker

pytestmark = pytest.mark.django_db


def tally(user: User) -> int:
    return memory_counts(owner_id=user.pk).long_term


def real(user: User) -> int:
    return LongTermMemory.objects.filter(owner=user, forgotten_at__isnull=True).count()


def test_the_tally_follows_every_write_path(db: None) -> None:
    me, other = op_user(), User.objects.create_user(username="tally-other")
    assert tally(me) == real(me) == 0  # no row yet: zero

    first = memory_write(owner=me, kind="fact", content="a", key="k").memory
    memory_write(owner=me, kind="fact", content="b", pinned=True)
    assert tally(me) == real(me) == 2
    memory_write(owner=me, kind="fact", content="a again", key="k")  # the key's memory updated, not added
    assert tally(me) == real(me) == 2
    memory_update(memory_id=first.pk, owner=me, content="changed", pinned=True)
    memory_pin(memory_ids=[first.pk], pinned=False, owner=me)
    memory_forget(memory_id=first.pk, owner=me)  # still stored, no longer counted
    assert tally(me) == real(me) == 1
    memory_forget(memory_id=first.pk, owner=me)  # forgotten already: not counted down twice
    assert tally(me) == real(me) == 1
    memory_restore(memory_id=first.pk, owner=me)
    assert tally(me) == real(me) == 2
    memory_restore(memory_id=first.pk, owner=me)  # remembered already: not counted up twice
    memory_write(owner=other, kind="fact", content="theirs")
    assert (tally(me), tally(other)) == (real(me), real(other)) == (2, 1)

    with pytest.raises(NotFoundError):  # another user's memory: a 404, and nothing counted down
        memory_delete(memory_id=first.pk, owner=other)
    memory_delete(memory_id=first.pk, owner=me)
    with pytest.raises(NotFoundError):  # already gone: not counted down twice
        memory_delete(memory_id=first.pk, owner=me)
    assert (tally(me), tally(other)) == (real(me), real(other)) == (1, 1)


def test_forgotten_memories_leave_every_count(db: None) -> None:
    """Forgetting counts down once; writing its key again or restoring counts up once; deleting a
    forgotten memory counts nothing down again; the pinned count leaves forgotten memories out too."""
    me = op_user()
    keyed = memory_write(owner=me, kind="fact", content="a", key="k", pinned=True).memory
    other = memory_write(owner=me, kind="fact", content="b").memory
    assert (memory_counts(owner_id=me.pk).pinned, memory_counts().pinned) == (1, 1)
    memory_forget(memory_id=keyed.pk, owner=me)
    assert tally(me) == real(me) == 1
    assert (memory_counts(owner_id=me.pk).pinned, memory_counts().pinned, memory_counts().long_term) == (0, 0, 1)
    memory_write(owner=me, kind="fact", content="a, written again", key="k")  # remembered again
    assert tally(me) == real(me) == 2
    assert memory_counts().long_term == 2
    memory_forget(memory_id=other.pk, owner=me)
    memory_delete(memory_id=other.pk, owner=me)  # counted down by its forget, not again
    assert tally(me) == real(me) == 1
    memory_forget(memory_id=keyed.pk, owner=me)
    assert memory_tally_rebuild() == 0  # no account holds a memory that is not forgotten
    assert tally(me) == real(me) == 0


def test_a_write_refused_counts_nothing(db: None) -> None:
    me = op_user()
    memory_write(owner=me, kind="fact", content="mine", key="k")
    with pytest.raises(Exception, match="a model may not change it"):
        memory_write(owner=me, kind="fact", content="overwrite", key="k", source="model")
    assert tally(me) == real(me) == 1


def test_rebuild_counts_memories_written_around_the_services(db: None) -> None:
    me, other = op_user(), User.objects.create_user(username="tally-other")
    memory_write(owner=me, kind="fact", content="through the service")
    LongTermMemory.objects.bulk_create(
        [
            LongTermMemory(owner=owner, kind=MemoryKind.FACT, content=f"bulk {i}")
            for i in range(3)
            for owner in (me, other)
        ]
    )
    assert tally(me) == 1  # the bulk load bypassed the services
    assert memory_tally_rebuild() == 2  # two accounts hold memories
    assert (tally(me), tally(other)) == (real(me), real(other)) == (4, 3)
    assert MemoryTally.objects.count() == 2


@pytest.mark.fault
@pytest.mark.django_db(transaction=True)
def test_the_tally_stays_exact_under_concurrent_writers() -> None:
    me = op_user()
    workers = [start_worker("tests.workers.memory_tally", [str(me.pk), "30", f"w{n}"]) for n in range(3)]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        assert out.strip() == "done"
    # Each worker: 10 keys (30 writes, each key three times); the memories of keys 0, 12 and 24 are
    # deleted right after they are created and created again by the key's next write.
    assert real(me) == 3 * 10
    assert tally(me) == real(me)
