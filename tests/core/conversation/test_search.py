"""Message search: the index the database keeps, the query syntax and its refusals, ranking,
snippets, every filter, ownership and paging; on whichever database the suite runs on."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.conversation.search import (
    MAX_TERMS,
    SearchCursor,
    SearchFilters,
    Term,
    message_search,
    message_search_q,
    plain_text,
    query_parse,
    snippet,
)
from core.conversation.services import (
    message_append,
    message_index_catch_up,
    session_archive,
    session_create,
    session_delete,
    session_update,
)
from core.errors import InvalidInputError
from core.models import AgentSession, Message, ModelRoute
from tests.owners import plain_user

pytestmark = pytest.mark.django_db

# On SQLite an append does not index (`message_index_catch_up` does, before a search): no insert trigger.
TRIGGERS = {"core_message_fts_delete", "core_message_fts_update"}


def _session(owner: User, route: ModelRoute, *texts: str, title: str = "s") -> AgentSession:
    session = session_create(owner=owner, title=title, route_alias=route.alias)
    for index, text in enumerate(texts):
        message_append(session_id=session.pk, role="user" if index % 2 == 0 else "assistant", content=text)
    return session


def _found(owner: User | None, query: str, **filters: Any) -> list[tuple[str, list[int]]]:
    """(session title, matching seqs best first) of every result, best first."""
    page = message_search(owner=owner, query=query, filters=SearchFilters(**filters))
    return [(hit.session.title, [message.seq for message in hit.messages]) for hit in page.results]


def _ids(query: str) -> set[int]:
    return set(Message.objects.filter(message_search_q(query)).values_list("pk", flat=True))


# --- The index the database keeps ----------------------------------------------------------


def test_the_index_objects_exist_after_migrating() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'core_message'")
            assert {row[0] for row in cursor.fetchall()} == TRIGGERS
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'core_message_fts'")
            assert cursor.fetchall() == [("core_message_fts",)]
        else:
            cursor.execute(
                "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'core_message'::regclass "
                "AND attname = 'search_vector'"
            )
            assert cursor.fetchall() == [("s",)]
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'core_message'")
            assert "core_message_search_gin" in {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_messages_written_before_the_migration_are_found_after_it(replay_route: ModelRoute) -> None:
    owner = plain_user("before")
    executor = MigrationExecutor(connection)
    executor.migrate([("core", "0009_owners")])
    try:
        # The old schema: rows written without any index.
        old_apps = executor.loader.project_state([("core", "0009_owners")]).apps
        old_session_model = old_apps.get_model("core", "AgentSession")
        old_message_model = old_apps.get_model("core", "Message")
        session = old_session_model.objects.create(title="old", route_id=replay_route.pk, owner_id=owner.pk, last_seq=1)
        old_message_model.objects.create(session_id=session.pk, seq=1, role="user", content="an heirloom tomato recipe")
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())  # every app: others depend on core
    assert _found(owner, "heirloom") == [("old", [1])]
    test_the_index_objects_exist_after_migrating()


def test_the_index_follows_inserts_edits_and_deletes(replay_route: ModelRoute, operator: User) -> None:
    session = _session(operator, replay_route, "the quick brown fox", "a lazy dog")
    first = Message.objects.get(session=session, seq=1)
    assert _ids("fox") == {first.pk}
    # An edit by the ORM and one in raw SQL: the old words go, the new ones come.
    Message.objects.filter(pk=first.pk).update(content="a slow green turtle")
    assert _ids("fox") == set()
    assert _ids("turtle") == {first.pk}
    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_message SET content = %s WHERE id = %s", ["a purple heron", first.pk])
    assert _ids("turtle") == set()
    assert _ids("heron") == {first.pk}
    # Changing another column leaves the text findable.
    Message.objects.filter(pk=first.pk).update(token_count=99)
    assert _ids("heron") == {first.pk}
    # A deleted message leaves the index (the leaf: a message with a reply under it cannot go alone).
    Message.objects.filter(session=session, seq=2).delete()
    assert _ids("dog") == set()
    assert _ids("heron") == {first.pk}
    Message.objects.bulk_create([Message(session=session, seq=3, role="user", content="bulk written heron")])
    assert _ids("heron") == {first.pk, Message.objects.get(session=session, seq=3).pk}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the catch-up migration changes only SQLite")
@pytest.mark.django_db(transaction=True)
def test_going_back_before_the_catch_up_indexes_what_waited(replay_route: ModelRoute, operator: User) -> None:
    _session(operator, replay_route, "a waiting saffron note")
    executor = MigrationExecutor(connection)
    executor.migrate([("core", "0022_mcp_server_status")])
    try:
        # Indexing on insert again, with the message that waited for a search already in the index.
        with connection.cursor() as cursor:
            cursor.execute("SELECT rowid FROM core_message_fts WHERE core_message_fts MATCH 'saffron'")
            assert [row[0] for row in cursor.fetchall()] == [Message.objects.get().pk]
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'core_message'")
            assert {row[0] for row in cursor.fetchall()} == {*TRIGGERS, "core_message_fts_insert"}
        _index_check()
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    test_the_index_objects_exist_after_migrating()
    assert _found(operator, "saffron") == [("s", [1])]
    _index_check()


def _varints(block: bytes) -> list[int]:
    """The SQLite varints of an FTS5 record (big-endian groups of 7 bits, the 9th byte whole)."""
    values, at = [], 0
    while at < len(block):
        value = 0
        for position in range(9):
            byte = block[at]
            at += 1
            if position == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
    return values


def _index_check() -> None:
    """After a catch-up, the SQLite index holds exactly every message's words: its documents, each
    (word, message) pair (read through an `fts5vocab` table), and its row and word totals that bm25
    ranks by, against the words of the stored texts (the test texts are plain ASCII words)."""
    message_index_catch_up()
    expected = {
        (word, pk) for pk, content in Message.objects.values_list("pk", "content") for word in content.lower().split()
    }
    words = sum(len(content.split()) for content in Message.objects.values_list("content", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO core_message_fts(core_message_fts) VALUES ('integrity-check')")
        cursor.execute("SELECT id FROM core_message_fts_docsize")
        assert {row[0] for row in cursor.fetchall()} == set(Message.objects.values_list("pk", flat=True))
        cursor.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.message_words USING fts5vocab(main, core_message_fts, instance)"
        )
        cursor.execute("SELECT term, doc FROM temp.message_words")
        assert set(cursor.fetchall()) == expected
        cursor.execute("SELECT block FROM core_message_fts_data WHERE id = 1")
        assert _varints(bytes(cursor.fetchone()[0])) == [Message.objects.count(), words]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL indexes a message as it is written")
def test_the_index_catches_up_before_a_search_and_only_then(replay_route: ModelRoute, operator: User) -> None:
    message_index_catch_up()
    session = _session(operator, replay_route, "an amber lamp", "a cobalt vase", "a scarlet kite")
    # Appending did not index: the three messages wait for the next search.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_message_fts_docsize")
        indexed = cursor.fetchone()[0]
    assert indexed == Message.objects.count() - 3
    assert _found(operator, "cobalt") == [("s", [2])]
    # The search indexed them; with nothing new, a catch-up is one read and writes nothing.
    with CaptureQueriesContext(connection) as queries:
        assert message_index_catch_up() == 0
    assert len(queries) == 1
    message_append(session_id=session.pk, role="user", content="a violet drum")
    assert _ids("violet") == {Message.objects.get(session=session, seq=4).pk}
    _index_check()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL indexes a message as it is written")
def test_edits_and_deletes_of_messages_not_yet_indexed_keep_the_index_whole(
    replay_route: ModelRoute, operator: User
) -> None:
    message_index_catch_up()
    kept = _session(operator, replay_route, "a granite bench", title="kept")
    gone = _session(operator, replay_route, "a marble bench", "a copper bell", title="gone")
    # Edited and deleted before any search indexed them: the triggers leave the index alone.
    Message.objects.filter(session=kept, seq=1).update(content="a granite bench and a walnut desk")
    session_delete(session_id=gone.pk)
    _index_check()
    assert _found(operator, "walnut") == [("kept", [1])]
    assert _found(operator, "marble") == []
    assert _found(operator, "bench") == [("kept", [1])]
    # An indexed message edited and deleted: the triggers update the index.
    Message.objects.filter(session=kept, seq=1).update(content="a pine shelf")
    assert _found(operator, "walnut") == []
    assert _found(operator, "pine") == [("kept", [1])]
    _index_check()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL indexes a message as it is written")
def test_a_reused_message_id_is_indexed_with_its_new_text(replay_route: ModelRoute, operator: User) -> None:
    first = _session(operator, replay_route, "an indexed thistle", title="first")
    assert _found(operator, "thistle") == [("first", [1])]
    top = Message.objects.get(session=first)
    session_delete(session_id=first.pk)
    # SQLite gives the next message the id just freed; it is not in the index, so a catch-up adds it.
    second = _session(operator, replay_route, "a fresh clover", title="second")
    assert Message.objects.get(session=second).pk == top.pk
    assert _found(operator, "thistle") == []
    assert _found(operator, "clover") == [("second", [1])]
    _index_check()


# --- Query syntax and its refusals ---------------------------------------------------------


def test_query_syntax_words_phrases_and_prefixes() -> None:
    assert query_parse('Tea "green leaf" plan* e-mail') == [
        Term(("tea",)),
        Term(("green", "leaf")),
        Term(("plan",), prefix=True),
        Term(("e", "mail")),
    ]
    assert query_parse("or near and") == [Term(("or",)), Term(("near",)), Term(("and",))]


@pytest.mark.fault
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('"', 'has a " that opens a phrase and no " that closes it'),
        ('tea "green', 'has a " that opens a phrase and no " that closes it'),
        ('""', '"" is a phrase without words'),
        ("*", "'*' has a * that does not end a word"),
        ("tea *", "'*' has a * that does not end a word"),
        ("a*", "a* is too short a prefix; give at least 2 characters before the *"),
        ('"plan*"', "a phrase takes no *"),
        ("NEAR(tea coffee)", "parentheses do not group terms here; remove them"),
        ("OR", "OR is not an operator here"),
        ("tea AND coffee", "AND is not an operator here"),
        ("...", "has no word to search for"),
        (" ".join(["w"] * (MAX_TERMS + 1)), f"has {MAX_TERMS + 1} words; at most {MAX_TERMS}"),
        (" ".join(["word"] * 10_000), "has 49999 characters; at most 1000"),
    ],
)
def test_hostile_queries_are_refused_with_the_reason(query: str, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInputError) as refused:
        query_parse(query)
    assert time.perf_counter() - started < 1  # a refusal is never a slow path (generous: CI machines)
    assert reason in refused.value.fields["q"][0]
    assert refused.value.fields["q"][0].endswith('search words, "a phrase" or a prefix* (every term must match)')


@pytest.mark.fault
@pytest.mark.parametrize(
    "query", ['"', "*", "NEAR(", "OR", " ".join(["x"] * 10_000), "'; DROP TABLE core_message; --", "\x00"]
)
def test_hostile_queries_through_the_api_are_400(api: APIClient, query: str) -> None:
    response = api.get("/api/search/", {"q": query})
    if query.startswith("'"):
        # Only punctuation around plain words: a search like any other, nothing dropped.
        assert response.status_code == 200, response.content
        assert Message.objects.model._meta.db_table == "core_message"
        return
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == ["q"]


# --- Ranking and snippets ------------------------------------------------------------------


def test_sessions_are_ranked_by_their_best_message(replay_route: ModelRoute, operator: User) -> None:
    _session(operator, replay_route, "tea once in a long sentence about many other things entirely", title="weak")
    _session(operator, replay_route, "tea tea tea", "no match here", "tea", title="strong")
    _session(operator, replay_route, "coffee only", title="none")
    assert _found(operator, "tea") == [("strong", [1, 3]), ("weak", [1])]
    page = message_search(owner=operator, query="tea")
    assert page.results[0].match_count == 2
    assert page.results[0].score > page.results[1].score


def test_phrases_and_prefixes_match_as_documented(replay_route: ModelRoute, operator: User) -> None:
    _session(operator, replay_route, "green leaf tea", "leaf green", "planning a planet", title="s")
    assert _found(operator, '"green leaf"') == [("s", [1])]
    assert sorted(_found(operator, "green leaf")[0][1]) == [1, 2]
    assert _found(operator, "plan*") == [("s", [3])]
    assert _found(operator, "plan") == []
    assert _found(operator, "GREEN Tea") == [("s", [1])]


def test_snippets_escape_html_and_mark_every_match(replay_route: ModelRoute, operator: User) -> None:
    text = "one two three four five six seven eight nine ten <b>tea</b> & Tea time, then more words after " * 3
    _session(operator, replay_route, text)
    hit = message_search(owner=operator, query="tea").results[0].messages[0]
    assert hit.snippet == (
        "… four five six seven eight nine ten &lt;b&gt;<mark>tea</mark>&lt;/b&gt; &amp; "
        "<mark>Tea</mark> time, then more words after one two three four five six seven eight nine …"
    )
    assert snippet("a <tea>", [Term(("tea",))]) == "a &lt;<mark>tea</mark>&gt;"
    assert snippet("planet plan", [Term(("plan",), prefix=True)]) == "<mark>planet</mark> <mark>plan</mark>"


def test_snippets_show_markdown_as_plain_text_and_mark_the_match(replay_route: ModelRoute, operator: User) -> None:
    text = (
        "# Making **tea**\n\nUse `hot water` and see [the guide](https://example.com/steeping).\n\n"
        "```python\nbrew(tea)\n```\n\n| kind | time |\n|---|:--:|\n| green | 2 min |\n"
        "- a _list_ item with ***tea*** and ~~milk~~\n> quoted <https://example.com/q> <b>x</b>"
    )
    _session(operator, replay_route, text)
    hit = message_search(owner=operator, query="tea").results[0].messages[0]
    assert hit.snippet == (
        "Making <mark>tea</mark> Use hot water and see the guide. brew(<mark>tea</mark>) kind | time green | 2 min "
        "a list …"
    )
    assert plain_text(text) == (
        "Making tea Use hot water and see the guide. brew(tea) kind | time green | 2 min "
        "a list item with tea and milk quoted https://example.com/q <b>x</b>"
    )
    # A word only in a link's address matches the index but is not shown: the opening words are.
    assert snippet("see [the guide](https://example.com/steeping) now", [Term(("steeping",))]) == "see the guide now"
    # Far into a long message, the Markdown around the match is dropped too, and both ends say there is more.
    long = "intro words\n" * 200 + "the **tea** is `hot`\n" + "more lines\n" * 200
    assert snippet(long, [Term(("tea",))]) == (
        "… words intro words intro words intro words the <mark>tea</mark> is hot more lines more lines more lines "
        "more lines more lines more lines more lines …"
    )


# --- Filters, ownership, paging --------------------------------------------------------------


def test_every_filter_narrows_the_search(replay_route: ModelRoute, operator: User) -> None:
    a = _session(operator, replay_route, "kiwi from the user", "kiwi from the assistant", title="a")
    b = _session(operator, replay_route, "kiwi again", title="b")
    archived = _session(operator, replay_route, "kiwi archived", title="archived")
    session_archive(session_id=archived.pk)
    session_update(session_id=b.pk, tags=["fruit"])
    Message.objects.filter(session=b).update(created=dt.datetime(2026, 1, 10, tzinfo=dt.UTC))

    assert sorted(title for title, _ in _found(operator, "kiwi")) == ["a", "b"]
    assert [title for title, _ in _found(operator, "kiwi", include_archived=True)] == ["a", "b", "archived"] or sorted(
        title for title, _ in _found(operator, "kiwi", include_archived=True)
    ) == ["a", "archived", "b"]
    assert _found(operator, "kiwi", session_id=a.pk) == [("a", [1, 2])] or _found(
        operator, "kiwi", session_id=a.pk
    ) == [("a", [2, 1])]
    assert _found(operator, "kiwi", session_id=a.pk, role="assistant") == [("a", [2])]
    assert _found(operator, "kiwi", tag="fruit") == [("b", [1])]
    assert _found(operator, "kiwi", tag="no such tag") == []
    january = {"date_from": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "date_to": dt.datetime(2026, 2, 1, tzinfo=dt.UTC)}
    assert _found(operator, "kiwi", **january) == [("b", [1])]
    assert sorted(t for t, _ in _found(operator, "kiwi", date_from=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))) == ["a"]
    with pytest.raises(InvalidInputError, match="to: is not after `from`"):
        _found(operator, "kiwi", date_from=january["date_to"], date_to=january["date_from"])


def test_another_users_messages_and_tags_never_match(replay_route: ModelRoute, operator: User) -> None:
    other = plain_user("other")
    _session(operator, replay_route, "mango secret", title="mine")
    theirs = _session(other, replay_route, "mango secret", title="theirs")
    session_update(session_id=theirs.pk, tags=["private"])
    assert _found(operator, "mango") == [("mine", [1])]
    assert _found(other, "mango") == [("theirs", [1])]
    assert _found(operator, "mango", tag="private") == []
    assert _found(operator, "mango", session_id=theirs.pk) == []
    assert sorted(title for title, _ in _found(None, "mango")) == ["mine", "theirs"]  # the admin's scope


def test_pages_follow_the_cursor_through_every_session_once(api: APIClient, operator: User) -> None:
    route = ModelRoute.objects.get(alias="replay") if ModelRoute.objects.filter(alias="replay").exists() else None
    assert route is None  # the api fixture makes no route; use one of our own
    from core.models import Provider, ProviderKind

    provider = Provider.objects.create(name="replay", kind=ProviderKind.REPLAY)
    route = ModelRoute.objects.create(
        alias="replay", provider=provider, model_id="r", context_window_tokens=8000, max_output_tokens=100
    )
    for index in range(7):
        _session(operator, route, "plum " * (index + 1), title=f"s{index}")
    seen: list[str] = []
    url: str | None = "/api/search/?q=plum&page_size=3"
    pages = 0
    message_index_catch_up()
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(url)
        assert response.status_code == 200, response.content
        # The page of sessions with their best messages, the sessions with their routes, their tags;
        # on SQLite first the read that finds the index up to date.
        assert len(queries) == 3 + (connection.vendor == "sqlite")
        body = response.json()
        seen += [result["session"]["title"] for result in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == [f"s{index}" for index in range(6, -1, -1)]
    first = api.get("/api/search/?q=plum&page_size=1").json()["results"][0]
    assert first["messages"][0]["seq"] == 1
    assert first["messages"][0]["snippet"].startswith("<mark>plum</mark>")
    assert api.get("/api/search/", {"q": "plum", "cursor": "not-a-cursor"}).status_code == 400
    assert api.get("/api/search/", {"q": "plum", "page_size": "51"}).status_code == 400
    assert api.get("/api/search/", {"q": "plum", "role": "robot"}).status_code == 400
    assert api.get("/api/search/", {"q": "plum", "sort": "x"}).json()["fields"] == {
        "sort": [
            "unknown field; this endpoint accepts q, session, role, tag, include_archived, from, to, cursor, page_size"
        ]
    }
    assert SearchCursor.decode(SearchCursor(1.5, AgentSession.objects.first().pk).encode()).score == 1.5  # type: ignore[union-attr]


@pytest.mark.fault
def test_a_message_of_the_largest_size_is_stored_and_found(replay_route: ModelRoute, operator: User) -> None:
    from core.conversation.contracts import MAX_CONTENT_CHARS

    words = " ".join(f"w{index}" for index in range(200_000))
    content = ("needle " + words)[:MAX_CONTENT_CHARS]
    _session(operator, replay_route, content, title="big")
    found = message_search(owner=operator, query="needle").results
    assert [(hit.session.title, hit.messages[0].snippet[:22]) for hit in found] == [("big", "<mark>needle</mark> w0")]


@pytest.mark.fault
@pytest.mark.parametrize(
    "params",
    [
        {"from": "0001-01-01T00:00:00+14:00"},
        {"to": "9999-12-31T23:59:59-14:00"},
        {"from": "2026-01-02", "to": "2026-01-01"},
        {"session": "not-a-uuid"},
        {"page_size": str(10**30)},
        {"include_archived": "perhaps"},
        {"cursor": "WzEuMCwgIk5hTiJd"},
        {"cursor": "Ww=="},
    ],
)
def test_bad_filters_are_400_naming_the_field(api: APIClient, params: dict[str, str]) -> None:
    response = api.get("/api/search/", {"q": "tea", **params})
    assert response.status_code == 400, response.content
    assert set(response.json()["fields"]) <= {*params, "from", "to"}
