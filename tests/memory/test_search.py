"""memory_search: literal-word AND semantics, ranking, hostile input, and the index following every write."""

from __future__ import annotations

import pytest
from django.db import connection
from pytest_django import DjangoAssertNumQueries

from core.errors import InvalidInputError
from memory.models import LongTermMemory
from memory.search import MAX_TERMS, MatchMode, memory_search, memory_search_q, search_terms
from memory.services import memory_delete, memory_pin, memory_update, memory_write
from tests.owners import op_user

pytestmark = pytest.mark.django_db


def contents(query: str, limit: int = 20, **kwargs: object) -> list[str]:
    return [hit.memory.content for hit in memory_search(query, limit, **kwargs)]  # type: ignore[arg-type]


@pytest.fixture
def corpus(db: None) -> None:
    for content, key in [
        ("The user drinks coffee every morning", "drink"),
        ("Tea in the afternoon, never coffee after 4pm", None),
        ("Lives in Paris; works from home", "home.city"),
        ("Do not schedule meetings on Friday", None),
        ("Favourite number is 3.14 and the site is example.com", None),
        ("Prefers well-known libraries", None),
        ("L'École du Louvre", None),
    ]:
        memory_write(owner=op_user(), kind="fact", content=content, key=key)


def test_terms_are_lowercased_distinct_words_of_letters_and_digits() -> None:
    assert search_terms('  Coffee, "coffee" AND tea* (NEAR) 3.14 _x_ École  ') == [
        "coffee",
        "and",
        "tea",
        "near",
        "3",
        "14",
        "x",
        "école",
    ]
    assert len(search_terms(" ".join(f"w{i}" for i in range(100)))) == MAX_TERMS


def test_every_word_must_match_in_any_case(corpus: None) -> None:
    assert set(contents("COFFEE")) == {
        "The user drinks coffee every morning",
        "Tea in the afternoon, never coffee after 4pm",
    }
    assert contents("coffee morning") == ["The user drinks coffee every morning"]
    assert contents("coffee paris") == []


def test_keys_are_searched_as_words(corpus: None) -> None:
    assert contents("city") == ["Lives in Paris; works from home"]
    assert contents("drink") == ["The user drinks coffee every morning"]


def test_words_are_split_the_same_way_on_both_databases(corpus: None) -> None:
    # PostgreSQL's own parser keeps example.com and 3.14 as single tokens; the index splits them.
    assert contents("example") == ["Favourite number is 3.14 and the site is example.com"]
    assert contents("3.14") == ["Favourite number is 3.14 and the site is example.com"]
    assert contents("14") == ["Favourite number is 3.14 and the site is example.com"]
    assert contents("known") == ["Prefers well-known libraries"]
    assert contents("well-known") == ["Prefers well-known libraries"]
    assert contents("ÉCOLE louvre") == ["L'École du Louvre"]


def test_no_stemming_and_no_prefix_matching(corpus: None) -> None:
    assert contents("drink") == ["The user drinks coffee every morning"]  # the key "drink", not "drinks"
    assert contents("drinking") == []
    assert contents("cof") == []
    assert contents("cof*") == []
    assert contents("ecole") == []  # accents are kept


def test_best_match_first_then_pinned_importance_and_newest_id(db: None) -> None:
    long = memory_write(owner=op_user(), kind="fact", content="tea " + " ".join(f"filler{i}" for i in range(30))).memory
    short = memory_write(owner=op_user(), kind="fact", content="tea tea tea").memory
    assert [hit.memory.pk for hit in memory_search("tea", 10)] == [short.pk, long.pk]
    hits = memory_search("tea", 10)
    assert hits[0].score > hits[1].score

    low = memory_write(owner=op_user(), kind="fact", content="same words here", importance=1).memory
    high = memory_write(owner=op_user(), kind="fact", content="same words here", importance=5).memory
    newer_low = memory_write(owner=op_user(), kind="fact", content="same words here", importance=1).memory
    assert [hit.memory.pk for hit in memory_search("same words", 10)] == [high.pk, newer_low.pk, low.pk]
    memory_pin(memory_ids=[low.pk], pinned=True)
    assert [hit.memory.pk for hit in memory_search("same words", 10)] == [low.pk, high.pk, newer_low.pk]
    assert [hit.memory.pk for hit in memory_search("same words", 2)] == [low.pk, high.pk]


def test_any_mode_ranks_more_matching_words_higher_and_can_leave_out_pinned(corpus: None) -> None:
    found = contents("coffee morning paris", mode=MatchMode.ANY)
    assert found[0] == "The user drinks coffee every morning"
    assert set(found) == {
        "The user drinks coffee every morning",
        "Tea in the afternoon, never coffee after 4pm",
        "Lives in Paris; works from home",
    }
    pinned = LongTermMemory.objects.get(key="home.city")
    memory_pin(memory_ids=[pinned.pk], pinned=True)
    assert "Lives in Paris; works from home" not in contents("paris", mode=MatchMode.ANY, include_pinned=False)
    assert contents("paris", include_pinned=True) == ["Lives in Paris; works from home"]


HOSTILE = [
    "",
    "   \t\n ",
    "!!! ??? ...",
    '"',
    '"""',
    "'",
    "(",
    "((coffee",
    "coffee)",
    "coffee AND",
    "OR",
    "NOT",
    "AND OR NOT",
    "NEAR(coffee tea, 2)",
    "coffee*",
    "*",
    "^coffee",
    "content:coffee",
    "key:drink",
    "- coffee",
    "coffee -tea",
    "coffee | tea & !paris",
    "coffee <-> tea",
    "'; DROP TABLE memory_longtermmemory; --",
    '" OR 1=1 --',
    "1); DELETE FROM memory_longtermmemory WHERE (1=1",
    "%s %s %(name)s {0}",
    "\\x00 \x00 nul",
    "emoji 🙂🙂 ☕",
    "x" * 50_000,
    " ".join(["coffee"] * 5_000),
    "a:b:c::d",
    "{coffee tea}",
    "[coffee]",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_any_text_is_a_safe_query(corpus: None, query: str) -> None:
    hits = memory_search(query, 20)
    words = search_terms(query)
    for hit in hits:
        text = f"{hit.memory.content} {hit.memory.key or ''}".lower()
        assert all(word in text for word in words)
    if not words:
        assert hits == []
    assert LongTermMemory.objects.count() == 7  # nothing was executed


def test_operators_are_searched_as_plain_words(corpus: None) -> None:
    assert contents("not schedule") == ["Do not schedule meetings on Friday"]
    assert contents("NOT coffee") == []  # both words, not "everything but coffee"
    assert contents("coffee OR paris") == []  # "or" is a word that no memory holds
    assert contents("coffee*") == contents("coffee")
    assert contents("'; DROP TABLE memory_longtermmemory; --") == []
    memory_write(owner=op_user(), kind="fact", content="'; DROP TABLE memory_longtermmemory; --")
    assert contents("drop table") == ["'; DROP TABLE memory_longtermmemory; --"]


@pytest.mark.parametrize("limit", [0, -1, 101, True, "5"])
def test_limit_is_bounded(limit: object) -> None:
    with pytest.raises(InvalidInputError, match=r"^limit: .* is out of range; give a whole number from 1 to 100$"):
        memory_search("coffee", limit)  # type: ignore[arg-type]


def test_index_follows_update_key_change_and_delete(db: None) -> None:
    memory = memory_write(owner=op_user(), kind="fact", content="likes green tea", key="drink.hot").memory
    memory_update(memory_id=memory.pk, content="likes black coffee")
    assert contents("green") == []
    assert contents("black coffee") == ["likes black coffee"]
    memory_update(memory_id=memory.pk, key="beverage")
    assert contents("hot") == []
    assert contents("beverage") == ["likes black coffee"]
    memory_write(owner=op_user(), kind="fact", content="likes espresso", key="beverage")
    assert contents("coffee") == []
    assert contents("espresso") == ["likes espresso"]
    memory_pin(memory_ids=[memory.pk], pinned=True)
    assert contents("espresso") == ["likes espresso"]
    memory_delete(memory_id=memory.pk)
    assert contents("espresso") == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            # The external-content index holds no entry for the deleted row (integrity-check passes).
            cursor.execute(
                "INSERT INTO memory_longtermmemory_fts(memory_longtermmemory_fts, rank) VALUES ('integrity-check', 1)"
            )
            cursor.execute(
                "SELECT count(*) FROM memory_longtermmemory_fts WHERE memory_longtermmemory_fts MATCH 'espresso'"
            )
            assert cursor.fetchone() == (0,)


def test_bulk_writes_outside_the_services_are_indexed_too(db: None) -> None:
    LongTermMemory.objects.bulk_create(
        [LongTermMemory(owner=op_user(), kind="fact", content=f"bulk row {i}") for i in range(5)]
    )
    assert len(memory_search("bulk row", 20)) == 5
    LongTermMemory.objects.filter(content="bulk row 3").update(content="changed row")
    assert len(memory_search("bulk", 20)) == 4
    LongTermMemory.objects.filter(content__startswith="bulk").delete()
    assert contents("row") == ["changed row"]


def test_search_filter_for_the_admin_matches_every_word(corpus: None) -> None:
    found = LongTermMemory.objects.filter(memory_search_q("coffee morning")).values_list("content", flat=True)
    assert list(found) == ["The user drinks coffee every morning"]
    assert not LongTermMemory.objects.filter(memory_search_q("((( ")).exists()


def test_search_is_one_query(corpus: None, django_assert_num_queries: DjangoAssertNumQueries) -> None:
    # The ranked SELECT joining the full-text index to memory_longtermmemory.
    with django_assert_num_queries(1):
        assert len(memory_search("coffee", 5)) == 2
    with django_assert_num_queries(0):
        assert memory_search("?!", 5) == []
