"""Large data sets loaded in bulk (raw inserts, counters fixed afterwards).

Only the bench's measured operations must go through the services; loading 100,000 messages
one service call at a time would take longer than the whole run is allowed to.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from bench.db import ROUTE_ALIAS, bulk_insert
from bench.peers import message_text
from core.models import AgentSession, Message

MESSAGE_FIELDS = ("session", "seq", "role", "content", "parts", "token_count", "token_count_estimated", "created")
ROLES = ("user", "assistant")
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def sessions_create(count: int) -> list[str]:
    """`count` sessions on the bench route, inserted in one statement batch."""
    from django.contrib.auth import get_user_model

    from core.models import ModelRoute

    route_id = ModelRoute.objects.only("id").get(alias=ROUTE_ALIAS).pk
    owner, _ = get_user_model()._default_manager.get_or_create(username="bench")
    sessions = [
        AgentSession(title=f"session {index}", route_id=route_id, owner_id=owner.pk, created=EPOCH, updated=EPOCH)
        for index in range(count)
    ]
    AgentSession.objects.bulk_create(sessions, batch_size=500)
    return [str(session.pk) for session in sessions]


def message_rows(session_id: str, first_seq: int, count: int) -> Iterator[tuple[Any, ...]]:
    for seq in range(first_seq, first_seq + count):
        text = message_text(seq)
        yield (session_id, seq, ROLES[seq % 2], text, [], len(text) // 4, True, EPOCH + timedelta(seconds=seq))


def messages_load(per_session: Sequence[tuple[str, int]]) -> int:
    """Messages 1..n for each (session, n), then every touched session's counters fixed."""

    def rows() -> Iterator[tuple[Any, ...]]:
        for session_id, count in per_session:
            yield from message_rows(session_id, 1, count)

    inserted = bulk_insert(Message, MESSAGE_FIELDS, rows())
    counters_fix([session_id for session_id, _ in per_session])
    return inserted


def counters_fix(session_ids: Sequence[str]) -> None:
    """Chain each session's messages in seq order (each one's parent the one before, as appends do),
    then set its last_seq, leaf, message_count and tokens_since_checkpoint from them."""
    session_table = connection.ops.quote_name(AgentSession._meta.db_table)
    message_table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {message_table} SET parent_id = previous.parent_id FROM ("
            f"SELECT id, LAG(id) OVER (PARTITION BY session_id ORDER BY seq) AS parent_id FROM {message_table}"
            f") AS previous WHERE {message_table}.id = previous.id AND previous.parent_id IS NOT NULL"
            f" AND {message_table}.parent_id IS NULL"
        )
    sql = f"""
        UPDATE {session_table} SET
            last_seq = COALESCE((SELECT MAX(seq) FROM {message_table} m WHERE m.session_id = {session_table}.id), 0),
            leaf = COALESCE((SELECT MAX(seq) FROM {message_table} m WHERE m.session_id = {session_table}.id), 0),
            message_count = (SELECT COUNT(*) FROM {message_table} m WHERE m.session_id = {session_table}.id),
            tokens_since_checkpoint = COALESCE(
                (SELECT SUM(token_count) FROM {message_table} m WHERE m.session_id = {session_table}.id), 0)
    """
    if len(session_ids) <= 50:
        ids = [AgentSession._meta.pk.get_db_prep_value(session_id, connection) for session_id in session_ids]
        sql += f" WHERE id IN ({', '.join(['%s'] * len(ids))})"
        params: list[Any] = ids
    else:
        params = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def session_with_messages(count: int, title: str = "") -> str:
    """One session whose log holds messages 1..count."""
    (session_id,) = sessions_create(1)
    if title:
        AgentSession.objects.filter(pk=session_id).update(title=title)
    messages_load([(session_id, count)])
    return session_id


# --- Words for memory fixtures ---------------------------------------------------------------

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "dra", "gon", "tel", "bis", "que", "zor")


def vocabulary(size: int, seed: int = 7) -> list[str]:
    """`size` distinct made-up words (deterministic), so word frequencies are under our control."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words
