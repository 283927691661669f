"""Long-term memory services: write with key upsert, update, delete, pin, mark used; constraints."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from pytest_django import DjangoAssertNumQueries

from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models import AgentSession
from memory.models import LongTermMemory
from memory.services import memory_delete, memory_mark_used, memory_pin, memory_update, memory_write
from tests.owners import op_user

pytestmark = pytest.mark.django_db


def test_write_round_trip_with_defaults_and_provenance(talked_session: AgentSession) -> None:
    result = memory_write(
        owner=op_user(),
        kind="fact",
        content="  The user lives in Lyon.  ",
        source_session_id=talked_session.id,
        source_first_seq=1,
        source_last_seq=3,
    )
    assert result.created is True
    stored = LongTermMemory.objects.get()
    assert (stored.kind, stored.content, stored.key, stored.importance, stored.pinned) == (
        "fact",
        "The user lives in Lyon.",
        None,
        3,
        False,
    )
    assert (stored.source_session_id, stored.source_first_seq, stored.source_last_seq) == (talked_session.id, 1, 3)
    assert stored.last_used_at is None
    assert str(stored) == f"fact #{stored.pk}: The user lives in Lyon."


def test_write_with_existing_key_updates_that_memory(talked_session: AgentSession) -> None:
    first = memory_write(owner=op_user(), kind="preference", content="tea", key="drink", importance=4, pinned=True)
    second = memory_write(owner=op_user(), kind="fact", content="coffee, black", key="drink")
    assert (first.created, second.created) == (True, False)
    assert second.memory.pk == first.memory.pk
    stored = LongTermMemory.objects.get()
    # Importance and pinned keep their stored values when not given.
    assert (stored.kind, stored.content, stored.importance, stored.pinned) == ("fact", "coffee, black", 4, True)
    third = memory_write(owner=op_user(), kind="fact", content="water", key="drink", importance=1, pinned=False)
    assert third.created is False
    stored.refresh_from_db()
    assert (stored.content, stored.importance, stored.pinned) == ("water", 1, False)
    assert LongTermMemory.objects.count() == 1


def test_memories_without_key_are_never_merged() -> None:
    memory_write(owner=op_user(), kind="fact", content="same")
    memory_write(owner=op_user(), kind="fact", content="same", key="  ")
    assert list(LongTermMemory.objects.values_list("key", flat=True)) == [None, None]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kind": "opinion", "content": "x"},
            "kind: 'opinion' is not allowed; use one of fact, preference, instruction",
        ),
        ({"kind": "fact", "content": "   "}, "content: is empty; give some text"),
        ({"kind": "fact", "content": "x" * 20_001}, "content: has 20001 characters; at most 20000 are allowed"),
        (
            {"kind": "fact", "content": "x", "importance": 0},
            "importance: 0 is out of range; give a whole number from 1 to 5",
        ),
        (
            {"kind": "fact", "content": "x", "importance": 6},
            "importance: 6 is out of range; give a whole number from 1 to 5",
        ),
        ({"kind": "fact", "content": "x", "key": "k" * 201}, "key: has 201 characters; at most 200 are allowed"),
        ({"kind": "fact", "content": "x", "key": "a\nb"}, "key: contains control characters; use printable text"),
        ({"kind": "fact", "content": "x", "pinned": "yes"}, "pinned: must be true or false"),
        (
            {"kind": "fact", "content": "x", "source_first_seq": 1, "source_last_seq": 2},
            "source_first_seq: a message range needs a session; give the session the messages belong to",
        ),
    ],
)
def test_write_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        memory_write(owner=op_user(), **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert caught.value.fields == {message.split(":")[0]: [message.split(": ", 1)[1]]}
    assert not LongTermMemory.objects.exists()


def test_write_rejects_a_range_past_the_session(talked_session: AgentSession) -> None:
    with pytest.raises(InvalidInputError, match=r"^source_last_seq: 9 is past the session's last message \(#4\)$"):
        memory_write(
            owner=op_user(),
            kind="fact",
            content="x",
            source_session_id=talked_session.id,
            source_first_seq=2,
            source_last_seq=9,
        )
    with pytest.raises(InvalidInputError, match=r"^source_last_seq: 1 is before first_seq 2; swap them$"):
        memory_write(
            owner=op_user(),
            kind="fact",
            content="x",
            source_session_id=talked_session.id,
            source_first_seq=2,
            source_last_seq=1,
        )
    with pytest.raises(InvalidInputError, match=r"^source_last_seq: is missing; give both ends"):
        memory_write(owner=op_user(), kind="fact", content="x", source_session_id=talked_session.id, source_first_seq=2)
    assert not LongTermMemory.objects.exists()


def test_write_with_unknown_session_is_not_found(db: None) -> None:
    with pytest.raises(NotFoundError, match=r"^source_session: no session 00000000-0000-0000-0000-000000000000$"):
        memory_write(
            owner=op_user(), kind="fact", content="x", source_session_id="00000000-0000-0000-0000-000000000000"
        )


def test_source_session_deletion_keeps_the_memory(talked_session: AgentSession) -> None:
    memory = memory_write(owner=op_user(), kind="fact", content="x", source_session_id=talked_session.id).memory
    talked_session.delete()
    memory.refresh_from_db()
    assert memory.source_session_id is None


def test_update_changes_only_given_fields_and_can_clear_key() -> None:
    memory = memory_write(owner=op_user(), kind="fact", content="old", key="k", importance=2).memory
    updated = memory_update(memory_id=memory.pk, content="new", pinned=True)
    assert (updated.content, updated.key, updated.importance, updated.pinned) == ("new", "k", 2, True)
    cleared = memory_update(memory_id=memory.pk, key=None)
    assert cleared.key is None
    assert LongTermMemory.objects.get().key is None


def test_update_to_a_key_held_by_another_memory_is_a_conflict() -> None:
    memory_write(owner=op_user(), kind="fact", content="a", key="taken")
    other = memory_write(owner=op_user(), kind="fact", content="b").memory
    with pytest.raises(ConflictError, match=r"^key: 'taken' belongs to another memory; write to that key"):
        memory_update(memory_id=other.pk, key="taken", content="changed")
    other.refresh_from_db()
    assert (other.key, other.content) == (None, "b")


def test_update_and_delete_unknown_memory_are_not_found(db: None) -> None:
    with pytest.raises(NotFoundError, match=r"^memory: no long-term memory 999$"):
        memory_update(memory_id=999, content="x")
    with pytest.raises(NotFoundError, match=r"^memory: no long-term memory 999$"):
        memory_delete(memory_id=999)


def test_delete_removes_the_memory() -> None:
    memory = memory_write(owner=op_user(), kind="fact", content="gone soon").memory
    memory_delete(memory_id=memory.pk)
    assert not LongTermMemory.objects.exists()


def test_pin_changes_only_rows_whose_state_differs() -> None:
    a = memory_write(owner=op_user(), kind="fact", content="a").memory
    b = memory_write(owner=op_user(), kind="fact", content="b", pinned=True).memory
    assert memory_pin(memory_ids=[a.pk, b.pk, a.pk], pinned=True) == 1
    assert set(LongTermMemory.objects.values_list("pinned", flat=True)) == {True}
    assert memory_pin(memory_ids=[b.pk], pinned=False) == 1
    assert LongTermMemory.objects.filter(pinned=True).get().pk == a.pk


def test_mark_used_sets_last_used_at_in_one_update(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    a = memory_write(owner=op_user(), kind="fact", content="a").memory
    b = memory_write(owner=op_user(), kind="fact", content="b").memory
    with django_assert_num_queries(0):
        assert memory_mark_used(memory_ids=[]) == 0
    # SAVEPOINT, UPDATE … SET last_used_at WHERE id IN (…), RELEASE SAVEPOINT
    with django_assert_num_queries(3):
        assert memory_mark_used(memory_ids=[a.pk, b.pk, a.pk]) == 2
    assert LongTermMemory.objects.filter(last_used_at__isnull=False).count() == 2


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"kind": "opinion"}, "memory_kind_valid"),
        ({"importance": 9}, "memory_importance_range"),
        ({"source_first_seq": 3, "source_last_seq": 1}, "memory_source_range_valid"),
        ({"source_first_seq": 3}, "memory_source_range_valid"),
    ],
)
def test_database_constraints_hold_without_the_service(fields: dict[str, object], constraint: str) -> None:
    row = {"kind": "fact", "content": "x", **fields}
    with pytest.raises(IntegrityError), transaction.atomic():
        LongTermMemory.objects.create(owner=op_user(), **row)


def test_database_refuses_a_second_memory_with_the_same_key() -> None:
    LongTermMemory.objects.create(owner=op_user(), kind="fact", content="a", key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        LongTermMemory.objects.create(owner=op_user(), kind="fact", content="b", key="k")
    LongTermMemory.objects.create(owner=op_user(), kind="fact", content="c", key=None)
    LongTermMemory.objects.create(owner=op_user(), kind="fact", content="d", key=None)
    assert LongTermMemory.objects.count() == 3
