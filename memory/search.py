"""Full-text search over long-term memory with one meaning on SQLite and PostgreSQL.

A query is plain user text. It is never handed to the database's query language: it is cut into
words here (runs of Unicode letters and digits; everything else, including FTS operators such as
AND, OR, NOT, NEAR, `*`, `^`, `:`, quotes, parentheses and SQL fragments, only separates words),
and each word becomes one literal term bound as a parameter:

- SQLite FTS5: `"word1" "word2"` (implicit AND) or `"word1" OR "word2"`, ranked by `bm25()`.
- PostgreSQL: `plainto_tsquery('simple', %s) && …` (or `||`), ranked by `ts_rank_cd(…, 1)`.

Neither side stems (FTS5 `unicode61`, PostgreSQL `simple`): `running` does not find `run`; case
does not matter; accents do (`cafe` does not find `café`). Ties in rank are broken by pinned,
then importance, then newest id, so the same state always gives the same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

from core.errors import InvalidInputError
from memory.models import LongTermMemory

MAX_QUERY_CHARS = 1_000
MAX_TERMS = 32
MAX_TERM_CHARS = 100
MAX_LIMIT = 100

# Runs of Unicode letters and digits: what FTS5 `unicode61` and the normalized PostgreSQL text index as words.
_WORD_RE = re.compile(r"[^\W_]+")


class MatchMode(StrEnum):
    ALL = "all"  # every word must occur (the search API)
    ANY = "any"  # at least one word; more matching words rank higher (relevance for the context builder)


@dataclass(frozen=True)
class SearchHit:
    """One matching memory and its score (higher is better)."""

    memory: LongTermMemory
    score: float


def search_terms(query: str) -> list[str]:
    """The distinct words of `query`, lowercased, in order; at most MAX_TERMS, each cut to MAX_TERM_CHARS."""
    terms: list[str] = []
    for word in _WORD_RE.findall(query[:MAX_QUERY_CHARS]):
        term = word.lower()[:MAX_TERM_CHARS]
        if term not in terms:
            terms.append(term)
            if len(terms) == MAX_TERMS:
                break
    return terms


def _columns() -> str:
    quote = connection.ops.quote_name
    return ", ".join(f"m.{quote(field.column)}" for field in LongTermMemory._meta.concrete_fields)


def _owner_condition(owner_id: int | None) -> tuple[str, list[object]]:
    return ("", []) if owner_id is None else ("AND m.owner_id = %s", [owner_id])


def _sqlite_sql(
    terms: list[str], mode: MatchMode, include_pinned: bool, owner_id: int | None
) -> tuple[str, list[object]]:
    joiner = " OR " if mode is MatchMode.ANY else " "
    match = joiner.join('"' + term.replace('"', '""') + '"' for term in terms)
    pinned = "" if include_pinned else "AND m.pinned = 0"
    owner, owner_params = _owner_condition(owner_id)
    # bm25() is lower-is-better; negate it so both backends report higher-is-better. Only fixed
    # identifiers are interpolated; the words are bound parameters.
    sql = (
        f"SELECT {_columns()}, -bm25(memory_longtermmemory_fts) AS score "  # noqa: S608  # nosec B608
        "FROM memory_longtermmemory_fts "
        "JOIN memory_longtermmemory m ON m.id = memory_longtermmemory_fts.rowid "
        f"WHERE memory_longtermmemory_fts MATCH %s AND m.forgotten_at IS NULL {pinned} {owner} "
        "ORDER BY score DESC, m.pinned DESC, m.importance DESC, m.id DESC "
        "LIMIT %s"
    )
    return sql, [match, *owner_params]


def _postgresql_sql(
    terms: list[str], mode: MatchMode, include_pinned: bool, owner_id: int | None
) -> tuple[str, list[object]]:
    joiner = " || " if mode is MatchMode.ANY else " && "
    tsquery = joiner.join("plainto_tsquery('simple', %s)" for _ in terms)
    pinned = "" if include_pinned else "AND NOT m.pinned"
    owner, owner_params = _owner_condition(owner_id)
    sql = (
        f"SELECT {_columns()}, ts_rank_cd(m.search_vector, q.query, 1) AS score "  # noqa: S608  # nosec B608
        f"FROM memory_longtermmemory m, (SELECT {tsquery} AS query) q "
        f"WHERE m.search_vector @@ q.query AND m.forgotten_at IS NULL {pinned} {owner} "
        "ORDER BY score DESC, m.pinned DESC, m.importance DESC, m.id DESC "
        "LIMIT %s"
    )
    return sql, [*terms, *owner_params]


def memory_search(
    query: str,
    limit: int = 20,
    *,
    owner_id: int | None = None,
    mode: MatchMode = MatchMode.ALL,
    include_pinned: bool = True,
) -> list[SearchHit]:
    """Memories of the user `owner_id` (None: everyone's, for the admin) matching the words of `query`, best first.

    Empty when the query has no words.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError.for_field(
            "limit", f"{limit!r} is out of range; give a whole number from 1 to {MAX_LIMIT}"
        )
    terms = search_terms(query)
    if not terms:
        return []
    if connection.vendor == "sqlite":
        sql, params = _sqlite_sql(terms, mode, include_pinned, owner_id)
    elif connection.vendor == "postgresql":
        sql, params = _postgresql_sql(terms, mode, include_pinned, owner_id)
    else:
        raise RuntimeError(f"memory search supports sqlite and postgresql, not {connection.vendor}")
    rows = LongTermMemory.objects.raw(sql, [*params, limit])
    return [SearchHit(memory=row, score=float(row.__dict__["score"])) for row in rows]


def memory_search_q(query: str) -> Q:
    """A filter for memories containing every word of `query` (the admin's search box); matches none without words."""
    terms = search_terms(query)
    if not terms:
        return Q(pk__in=[])
    if connection.vendor == "sqlite":
        match = " ".join('"' + term.replace('"', '""') + '"' for term in terms)
        subquery = "SELECT rowid FROM memory_longtermmemory_fts WHERE memory_longtermmemory_fts MATCH %s"
        return Q(pk__in=RawSQL(subquery, [match]))  # noqa: S611  # nosec B611
    tsquery = " && ".join("plainto_tsquery('simple', %s)" for _ in terms)
    subquery = f"SELECT id FROM memory_longtermmemory WHERE search_vector @@ ({tsquery})"  # noqa: S608  # nosec B608
    return Q(pk__in=RawSQL(subquery, terms))  # noqa: S611  # nosec B611
