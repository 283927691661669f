"""Full-text search over every message a user wrote or received, with one meaning on SQLite and PostgreSQL.

Query syntax (`query_parse`), the only one accepted:

- `word`: a word (a run of Unicode letters and digits; case does not matter, no stemming);
- `"two words"`: a phrase, the words next to each other in that order;
- `pref*`: any word starting with `pref` (at least 2 characters before the `*`);
- every term must match (AND). A bare token holding punctuation (`example.com`, `e-mail`) is a
  phrase of its words, as the index splits the text.

Anything else is refused with the reason (a 400 from the API), never handed to a query language:
an unclosed `"`, an empty phrase, a `*` not after a word of 2+ characters or inside a phrase,
parentheses, the operators `AND`, `OR`, `NOT`, `NEAR` written in capitals (every term must match
already; write the word in lowercase or in quotes to search for it), more than `MAX_TERMS` words or
`MAX_QUERY_CHARS` characters. Each word is bound as a parameter: FTS5 `"w1 w2"` / `"pre"*`,
PostgreSQL `plainto_tsquery` / `phraseto_tsquery` / `to_tsquery('pre:*')` joined with `&&`.

Results are the requesting user's sessions, best first (the score of their best message: `-bm25()`
on SQLite, `ts_rank_cd(…, 1)` on PostgreSQL; ties by session id), each with its best
`MESSAGES_PER_SESSION` messages (score, then seq). A snippet is the text around the first match as
plain text (its Markdown markers dropped: `plain_text`), HTML-escaped, with every matching word
wrapped in `<mark>` … `</mark>`. Pages are keyset cursors over (score, session id). On SQLite
the index first catches up with the messages written since the last search (`message_index_catch_up`).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

from core.conversation.selectors import OwnerScope, session_uuid
from core.conversation.services import message_index_catch_up, plain_title
from core.errors import InvalidInputError
from core.models import AgentSession, Message, MessageRole, SessionStatus, Tag

MAX_QUERY_CHARS = 1_000
MAX_TERMS = 32
MIN_PREFIX_CHARS = 2
MAX_PAGE_SIZE = 50
DEFAULT_PAGE_SIZE = 20
MESSAGES_PER_SESSION = 3
SNIPPET_WORDS_BEFORE = 8
SNIPPET_WORDS_AFTER = 16
# What the PostgreSQL index covers of a message (see migration 0010); snippets look no further.
INDEXED_CHARS = 200_000
# How much raw text around the first match a snippet is cut from (before its Markdown is stripped).
SNIPPET_CHARS_BEFORE = 600
SNIPPET_CHARS_AFTER = 1_200
MARK_OPEN, MARK_CLOSE = "<mark>", "</mark>"

_WORD_RE = re.compile(r"[^\W_]+")
_BARE_RE = re.compile(r"([^\W_]+)(\*?)|(\*)")
_MD_FENCE = re.compile(r"\s*(?:`{3,}|~{3,})[^`\s]*\s*")
_MD_TABLE_RULE = re.compile(r"[\s:|-]*\|[\s:|-]*")
_MD_AUTOLINK = re.compile(r"<((?:https?|mailto):[^\s<>]*)>")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
_SYNTAX = 'search words, "a phrase" or a prefix* (every term must match)'


@dataclass(frozen=True)
class Term:
    """One term of a query: a word, or a phrase of words in order; `prefix` matches words starting with it."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class MessageHit:
    """One matching message: where it is (`seq` to jump to) and its highlighted snippet."""

    id: int
    seq: int
    role: str
    created: datetime
    score: float
    snippet: str


@dataclass(frozen=True)
class SessionHits:
    """A session with a match: its best score, how many of its messages match, the best of them."""

    session: AgentSession
    score: float
    match_count: int
    messages: list[MessageHit] = field(default_factory=list)


@dataclass(frozen=True)
class SearchCursor:
    """Where the next page starts: after the session with this (score, id)."""

    score: float
    session_id: UUID

    def encode(self) -> str:
        raw = json.dumps([self.score, self.session_id.hex]).encode()
        return base64.urlsafe_b64encode(raw).decode()

    @classmethod
    def decode(cls, text: str) -> SearchCursor:
        """The cursor a previous page gave, or an `InvalidInputError` on `cursor`."""
        try:
            score, session_hex = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
            if isinstance(score, bool) or not isinstance(score, int | float) or not isinstance(session_hex, str):
                raise TypeError(score)
            if not math.isfinite(score):
                raise ValueError(score)
            return cls(score=float(score), session_id=UUID(hex=session_hex))
        except (ValueError, TypeError, UnicodeError, binascii.Error):
            raise InvalidInputError.for_field(
                "cursor", "is not a cursor this search gave; use the `next` link as it is, or start without it"
            ) from None


@dataclass(frozen=True)
class SearchFilters:
    """What narrows a search besides its words (None: no narrowing)."""

    session_id: UUID | str | None = None
    role: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    tag: str | None = None
    include_archived: bool = False


@dataclass(frozen=True)
class SearchPage:
    """One page of sessions with their matches, and the cursor of the next page (None at the end)."""

    results: list[SessionHits]
    next_cursor: SearchCursor | None


def _refuse(problem: str) -> InvalidInputError:
    said = f"{problem}; {_SYNTAX}"
    return InvalidInputError(f"q: {said}", fields={"q": [said]})


def _bare_terms(token: str) -> list[Term]:
    if token in _OPERATORS:
        raise _refuse(
            f"{token} is not an operator here (every term must match already); to search for the word, "
            f'write it in lowercase or in quotes ("{token.lower()}")'
        )
    if "(" in token or ")" in token:
        raise _refuse("parentheses do not group terms here; remove them")
    words: list[str] = []
    prefix = False
    for match in _BARE_RE.finditer(token):
        word, star, lone_star = match.groups()
        if lone_star or prefix:
            raise _refuse(f"{token!r} has a * that does not end a word; put it right after a word, as in plan*")
        if star and len(word) < MIN_PREFIX_CHARS:
            raise _refuse(f"{word}* is too short a prefix; give at least {MIN_PREFIX_CHARS} characters before the *")
        words.append(word.lower())
        prefix = bool(star)
    if not words:
        return []
    if prefix and len(words) > 1:
        # `e-mai*`: the phrase part and the prefix part are two terms (a prefix ends no phrase here).
        return [Term(tuple(words[:-1])), Term((words[-1],), prefix=True)]
    return [Term(tuple(words), prefix=prefix)]


def query_parse(text: str) -> list[Term]:
    """The terms of a search query (see the module docstring), or an `InvalidInputError` on `q` saying why."""
    if len(text) > MAX_QUERY_CHARS:
        raise _refuse(f"has {len(text)} characters; at most {MAX_QUERY_CHARS}")
    if text.count('"') % 2:
        raise _refuse('has a " that opens a phrase and no " that closes it; close the phrase or remove the quote')
    terms: list[Term] = []
    for index, segment in enumerate(text.split('"')):
        if index % 2:
            if "*" in segment:
                raise _refuse('a phrase takes no *; search "whole words" or put the prefix* outside the quotes')
            words = tuple(word.lower() for word in _WORD_RE.findall(segment))
            if not words:
                raise _refuse(f'"{segment}" is a phrase without words; put words between the quotes')
            terms.append(Term(words))
            continue
        for token in segment.split():
            terms.extend(_bare_terms(token))
    count = sum(len(term.words) for term in terms)
    if count > MAX_TERMS:
        raise _refuse(f"has {count} words; at most {MAX_TERMS}")
    if not terms:
        raise _refuse("has no word to search for")
    return terms


# --- SQL for each backend -----------------------------------------------------------------------


def _fts5_match(terms: Sequence[Term]) -> str:
    """The FTS5 MATCH text: each term a quoted phrase of plain words (no word holds a quote)."""
    return " ".join('"' + " ".join(term.words) + '"' + ("*" if term.prefix else "") for term in terms)


def _tsquery(terms: Sequence[Term]) -> tuple[str, list[str]]:
    """A PostgreSQL tsquery expression with one bound parameter per term."""
    parts: list[str] = []
    params: list[str] = []
    for term in terms:
        if term.prefix:
            # The word is letters and digits only, so `word:*` is the whole tsquery text.
            parts.append("to_tsquery('simple', %s)")
            params.append(term.words[0] + ":*")
        elif len(term.words) > 1:
            parts.append("phraseto_tsquery('simple', %s)")
            params.append(" ".join(term.words))
        else:
            parts.append("plainto_tsquery('simple', %s)")
            params.append(term.words[0])
    return " && ".join(parts), params


def _hits_sql(terms: Sequence[Term], where: str, where_params: list[Any]) -> tuple[str, list[Any]]:
    """SELECT of every matching message the filters allow: id, session_id, seq, role, created, score."""
    if connection.vendor == "sqlite":
        sql = (
            "SELECT m.id AS id, m.session_id AS session_id, m.seq AS seq, m.role AS role, m.created AS created, "  # noqa: S608  # nosec B608
            "-bm25(core_message_fts) AS score "
            "FROM core_message_fts JOIN core_message m ON m.id = core_message_fts.rowid "
            "JOIN core_agentsession s ON s.id = m.session_id "
            f"WHERE core_message_fts MATCH %s {where}"
        )
        return sql, [_fts5_match(terms), *where_params]
    if connection.vendor == "postgresql":
        tsquery, params = _tsquery(terms)
        sql = (
            "SELECT m.id AS id, m.session_id AS session_id, m.seq AS seq, m.role AS role, m.created AS created, "  # noqa: S608  # nosec B608
            "ts_rank_cd(m.search_vector, q.query, 1)::float8 AS score "
            f"FROM (SELECT {tsquery} AS query) q, core_message m "
            "JOIN core_agentsession s ON s.id = m.session_id "
            f"WHERE m.search_vector @@ q.query {where}"
        )
        return sql, [*params, *where_params]
    raise RuntimeError(f"message search supports sqlite and postgresql, not {connection.vendor}")


def _session_param(session_id: UUID | str) -> Any:
    return AgentSession._meta.pk.get_db_prep_value(session_uuid(session_id), connection)


def _where(owner: OwnerScope, filters: SearchFilters, tag_id: int | None) -> tuple[str, list[Any]]:
    """The filters as SQL on `m` (message) and `s` (session); only fixed text, every value a parameter."""
    clauses: list[str] = []
    params: list[Any] = []
    if owner is not None:
        clauses.append("s.owner_id = %s")
        params.append(owner.pk)
    if not filters.include_archived:
        clauses.append("s.status = %s")
        params.append(SessionStatus.ACTIVE.value)
    if filters.session_id is not None:
        clauses.append("m.session_id = %s")
        params.append(_session_param(filters.session_id))
    if filters.role is not None:
        clauses.append("m.role = %s")
        params.append(filters.role)
    if filters.date_from is not None:
        clauses.append("m.created >= %s")
        params.append(connection.ops.adapt_datetimefield_value(filters.date_from))
    if filters.date_to is not None:
        clauses.append("m.created < %s")
        params.append(connection.ops.adapt_datetimefield_value(filters.date_to))
    if tag_id is not None:
        through = AgentSession.tags.through._meta.db_table
        clauses.append(f"m.session_id IN (SELECT agentsession_id FROM {through} WHERE tag_id = %s)")  # noqa: S608  # nosec B608
        params.append(tag_id)
    return "".join(f" AND {clause}" for clause in clauses), params


def _check_filters(filters: SearchFilters) -> None:
    if filters.role is not None and filters.role not in MessageRole.values:
        raise InvalidInputError.for_field(
            "role", f"{filters.role!r} is not a role; use one of {', '.join(MessageRole.values)}"
        )
    if filters.date_from is not None and filters.date_to is not None and filters.date_from >= filters.date_to:
        raise InvalidInputError.for_field("to", "is not after `from`; give a later `to` or an earlier `from`")


def _tag_id(owner: OwnerScope, name: str) -> int | None:
    """The id of `owner`'s tag `name` (0 when they have none: the filter then matches nothing)."""
    tags = Tag.objects.filter(name=name.strip())
    if owner is not None:
        tags = tags.filter(owner_id=owner.pk)
    return tags.values_list("pk", flat=True).first() or 0


def message_search(
    *,
    owner: OwnerScope,
    query: str,
    filters: SearchFilters | None = None,
    cursor: SearchCursor | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> SearchPage:
    """`owner`'s sessions (None: everyone's, for the admin) whose messages match `query`, best first, one page."""
    filters = filters or SearchFilters()
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInputError.for_field("page_size", f"{page_size!r}: give a whole number from 1 to {MAX_PAGE_SIZE}")
    terms = query_parse(query)
    _check_filters(filters)
    message_index_catch_up()
    tag_id = _tag_id(owner, filters.tag) if filters.tag is not None else None
    where, where_params = _where(owner, filters, tag_id)
    hits, hits_params = _hits_sql(terms, where, where_params)
    after = ""
    after_params: list[Any] = []
    if cursor is not None:
        session = _session_param(cursor.session_id)
        after = "WHERE best < %s OR (best = %s AND session_id < %s) "
        after_params = [cursor.score, cursor.score, session]
    # One statement, the matches read once: h every matching message (MATERIALIZED: SQLite must not
    # fold the FTS5 query, and its bm25(), into the aggregate), p the page of sessions ranked by their
    # best message (one more than the page, to know whether another follows), r the best messages of
    # those sessions, with their text for the snippets.
    sql = (
        f"WITH h AS MATERIALIZED ({hits}), "  # noqa: S608  # nosec B608
        "p AS (SELECT session_id, best, hits FROM ("
        "SELECT h.session_id AS session_id, MAX(h.score) AS best, COUNT(*) AS hits FROM h GROUP BY h.session_id) g "
        f"{after}ORDER BY best DESC, session_id DESC LIMIT %s), "
        "r AS (SELECT h.id, h.session_id, h.seq, h.role, h.created, h.score, "
        "ROW_NUMBER() OVER (PARTITION BY h.session_id ORDER BY h.score DESC, h.seq) AS rank "
        "FROM h WHERE h.session_id IN (SELECT session_id FROM p)) "
        "SELECT p.session_id, p.best, p.hits, r.id, r.seq, r.role, r.created, r.score, c.content "
        "FROM p JOIN r ON r.session_id = p.session_id JOIN core_message c ON c.id = r.id "
        "WHERE r.rank <= %s ORDER BY p.best DESC, p.session_id DESC, r.rank"
    )
    with connection.cursor() as db:
        db.execute(sql, [*hits_params, *after_params, page_size + 1, MESSAGES_PER_SESSION])
        rows = db.fetchall()
    session_field = AgentSession._meta.pk
    created_field = Message._meta.get_field("created")
    converters = connection.ops.get_db_converters(created_field.get_col(Message._meta.db_table))
    ranked: dict[UUID, tuple[float, int, list[MessageHit]]] = {}
    for session_id, best, count, message_id, seq, role, created, score, content in rows:
        key = session_field.to_python(session_id)
        if key not in ranked:
            if len(ranked) == page_size:
                break  # the first session of the next page: it only says that one follows
            ranked[key] = (float(best), int(count), [])
        for converter in converters:
            created = converter(created, created_field, connection)
        hit = MessageHit(
            id=int(message_id),
            seq=int(seq),
            role=str(role),
            created=created,
            score=float(score),
            snippet=snippet(content, terms),
        )
        ranked[key][2].append(hit)
    more = len({row[0] for row in rows}) > page_size
    if not ranked:
        return SearchPage(results=[], next_cursor=None)
    sessions = AgentSession.objects.select_related("route").prefetch_related("tags").in_bulk(list(ranked))
    results = [
        SessionHits(session=sessions[pk], score=best, match_count=count, messages=hits_of)
        for pk, (best, count, hits_of) in ranked.items()
    ]
    last = results[-1]
    return SearchPage(results=results, next_cursor=SearchCursor(last.score, last.session.pk) if more else None)


# --- Snippets ------------------------------------------------------------------------------------


def _matches(word: str, terms: Sequence[Term]) -> bool:
    return any((word.startswith(term.words[0]) if term.prefix else word in term.words) for term in terms if term.words)


def plain_text(markdown: str) -> str:
    """`markdown` as readable text on one line: each line without its Markdown (`plain_title`: emphasis,
    code spans, links, headings, list and quote markers), code fences and table rules dropped."""
    lines = []
    for line in markdown.splitlines():
        if _MD_FENCE.fullmatch(line) or _MD_TABLE_RULE.fullmatch(line):
            continue
        plain = plain_title(_MD_AUTOLINK.sub(r"\1", line).strip().strip("|"))
        if plain:
            lines.append(plain)
    return " ".join(lines)


def _region(text: str, terms: Sequence[Term]) -> tuple[int, int]:
    """The part of `text` a snippet is cut from: around the first matching word, widened to whole lines
    when they are short, so a Markdown marker is stripped with its pair; bounded, so stripping stays cheap."""
    first = next((match for match in _WORD_RE.finditer(text) if _matches(match.group().lower(), terms)), None)
    at = first.start() if first is not None else 0
    start, end = max(0, at - SNIPPET_CHARS_BEFORE), min(len(text), at + SNIPPET_CHARS_AFTER)
    line_start, line_end = text.rfind("\n", 0, start) + 1, text.find("\n", end)
    if start - line_start <= SNIPPET_CHARS_BEFORE:
        start = line_start
    if line_end == -1:
        line_end = len(text)
    if line_end - end <= SNIPPET_CHARS_AFTER:
        end = line_end
    return start, end


def snippet(content: str, terms: Sequence[Term]) -> str:
    """The text around the first matching word as plain text (`plain_text`: its Markdown dropped),
    HTML-escaped, each matching word in `<mark>` … `</mark>`."""
    start, end = _region(content[:INDEXED_CHARS], terms)
    text = plain_text(content[start:end])
    before: deque[re.Match[str]] = deque(maxlen=SNIPPET_WORDS_BEFORE)
    window: list[re.Match[str]] = []
    after = 0
    cut = end < len(content)
    for match in _WORD_RE.finditer(text):
        if window:
            window.append(match)
            after += 1
            if after == SNIPPET_WORDS_AFTER:
                cut = True
                break
        elif _matches(match.group().lower(), terms):
            window = [*before, match]
        else:
            before.append(match)
    if not window:
        # No word matched here (the index folds case a little differently, or the word was in a link's
        # address): the opening words.
        return html.escape(" ".join(text.split()[: SNIPPET_WORDS_BEFORE + SNIPPET_WORDS_AFTER]))
    first, last = window[0].start(), window[-1].end()
    pieces: list[str] = ["… "] if first > 0 or start > 0 else []
    position = first
    for match in window:
        pieces.append(html.escape(text[position : match.start()]))
        word = html.escape(match.group())
        pieces.append(f"{MARK_OPEN}{word}{MARK_CLOSE}" if _matches(match.group().lower(), terms) else word)
        position = match.end()
    if cut:
        pieces.append(" …")
    else:
        pieces.append(html.escape(text[last:]))
    return " ".join("".join(pieces).split())


# --- The admin's search box ----------------------------------------------------------------------


def message_search_q(query: str, *, field: str = "pk", column: str = "id") -> Q:
    """A filter: `field` in the `column` (the message `id`, or its `session_id`) of messages matching `query`.

    The admin's search boxes use it (messages: the default; sessions: `column="session_id"`); a query
    the syntax refuses matches nothing.
    """
    if column not in ("id", "session_id"):
        raise ValueError(f"column is id or session_id, not {column!r}")
    try:
        terms = query_parse(query)
    except InvalidInputError:
        return Q(pk__in=[])
    if connection.vendor == "sqlite":
        message_index_catch_up()
        subquery = (
            f"SELECT m.{column} FROM core_message_fts JOIN core_message m "  # noqa: S608  # nosec B608
            "ON m.id = core_message_fts.rowid WHERE core_message_fts MATCH %s"
        )
        return Q(**{f"{field}__in": RawSQL(subquery, [_fts5_match(terms)])})  # noqa: S611  # nosec B611
    tsquery, params = _tsquery(terms)
    subquery = f"SELECT {column} FROM core_message WHERE search_vector @@ ({tsquery})"  # noqa: S608  # nosec B608
    return Q(**{f"{field}__in": RawSQL(subquery, params)})  # noqa: S611  # nosec B611
