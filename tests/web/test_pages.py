"""The pages render what the selectors hold, for the signed-in user only, and refuse bad input in words."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.accounts.models import ApiToken
from core.conversation.services import message_append, session_update
from core.models import AgentSession, Message, ModelRoute
from memory.models import LongTermMemory
from memory.services import memory_write
from tests.owners import plain_user

pytestmark = pytest.mark.django_db

PAGES = ["/", "/usage/", "/memory/", "/configuration/", "/account/", "/search/?q=hello", "/import/"]


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_signed_out_visitor_to_sign_in(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_for_a_new_user_with_nothing_stored(path: str, replay_route: ModelRoute) -> None:
    response = signed_in(plain_user("ann")).get(path)
    assert response.status_code == 200
    assert b'<meta name="csrf-token"' in response.content


def test_the_chat_is_a_new_chat_on_the_default_route_with_a_focused_composer(replay_route: ModelRoute) -> None:
    body = signed_in(plain_user("ann")).get("/").content.decode()
    assert re.search(r"<textarea id=\"composer\" name=\"text\" rows=\"2\" autofocus", body)
    assert '<option value="replay" selected>replay (default)</option>' in body
    assert "A new chat. Write below and press Enter." in body


def test_the_chat_without_a_route_says_what_to_configure(db: None) -> None:
    body = signed_in(plain_user("ann")).get("/").content.decode()
    assert "No route is configured: add one to the config file and run manage.py load_config." in body
    assert re.search(r"<textarea [^>]*disabled", body)


def test_a_conversation_renders_markdown_safely_with_siblings(chat_session: AgentSession, operator: User) -> None:
    message_append(session_id=chat_session.pk, role="user", content="hi")
    hostile = (
        "**bold** <script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))"
        "\n\n```python\nprint(1)\n```"
    )
    message_append(session_id=chat_session.pk, role="assistant", content=hostile, parent_seq=1)
    message_append(session_id=chat_session.pk, role="assistant", content="second answer", parent_seq=1)
    body = signed_in(operator).get(f"/chat/{chat_session.pk}/").content.decode()
    assert "MessageView(" not in body  # the page's notices are the messages framework's, not the conversation
    assert "second answer" in body
    assert "2/2" in body
    assert "<script>alert" not in body
    assert "<img" not in body
    assert 'href="javascript' not in body
    # Back on the first reply's branch: its Markdown is rendered, its hostile parts are text.
    signed_in(operator).post(f"/api/sessions/{chat_session.pk}/leaf/", {"seq": 2}, content_type="application/json")
    body = signed_in(operator).get(f"/chat/{chat_session.pk}/").content.decode()
    assert "<strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;" in body
    assert "[x](javascript:alert(3))" in body
    assert '<span class="nb">print</span>' in body
    assert "1/2" in body
    assert Message.objects.filter(session=chat_session).count() == 3


def test_another_users_conversation_is_a_404(chat_session: AgentSession) -> None:
    response = signed_in(plain_user("eve")).get(f"/chat/{chat_session.pk}/")
    assert response.status_code == 404


def test_the_session_list_shows_pinned_first_and_hides_archived(replay_route: ModelRoute, operator: User) -> None:
    from core.conversation.services import session_archive, session_create

    plain = session_create(owner=operator, title="plain one", route_alias="replay")
    pinned = session_create(owner=operator, title="pinned one", route_alias="replay")
    gone = session_create(owner=operator, title="archived one", route_alias="replay")
    session_update(session_id=pinned.pk, owner=operator, title=None, route_alias=None, pinned=True, tags=["work"])
    session_archive(session_id=gone.pk, owner=operator)
    body = signed_in(operator).get("/").content.decode()
    assert body.index("pinned one") < body.index("plain one")
    assert "archived one" not in body
    tagged = signed_in(operator).get("/?tag=work").content.decode()
    assert "pinned one" in tagged
    assert "plain one" not in tagged
    assert plain.pk != pinned.pk


def test_search_finds_an_old_message_and_explains_bad_syntax(chat_session: AgentSession, operator: User) -> None:
    message_append(session_id=chat_session.pk, role="user", content="the zebra crossing at noon")
    body = signed_in(operator).get("/search/?q=zebra").content.decode()
    assert f'href="/chat/{chat_session.pk}/#m1"' in body
    assert "<mark>zebra</mark>" in body
    refused = signed_in(operator).get("/search/?q=%22unclosed").content.decode()
    assert 'role="alert"' in refused
    assert "q:" in refused


def test_search_shows_a_markdown_message_as_plain_text_with_the_match_marked(
    chat_session: AgentSession, operator: User
) -> None:
    message_append(
        session_id=chat_session.pk,
        role="assistant",
        content="## The **zebra** crossing\n\n- see `zebra.py` and [the map](https://example.com/map) <i>now</i>",
    )
    body = signed_in(operator).get("/search/?q=zebra").content.decode()
    line = re.search(r"\(assistant\)</a>: (.*)</li>", body)
    assert line is not None
    assert line[1] == ("The <mark>zebra</mark> crossing see <mark>zebra</mark>.py and the map &lt;i&gt;now&lt;/i&gt;")


def test_memory_pin_and_forget_act_on_ones_own_memories_only(operator: User) -> None:
    mine = memory_write(owner=operator, kind="fact", content="likes tea").memory
    other = memory_write(owner=plain_user("eve"), kind="fact", content="likes coffee").memory
    client = signed_in(operator)
    assert client.post("/memory/", {"memory": mine.pk, "action": "pin"}).status_code == 302
    assert LongTermMemory.objects.get(pk=mine.pk).pinned is True
    client.post("/memory/", {"memory": other.pk, "action": "forget"})
    assert LongTermMemory.objects.filter(pk=other.pk).exists()
    page = client.get("/memory/").content.decode()
    assert f"no long-term memory {other.pk}" in page
    assert "likes coffee" not in page
    client.post("/memory/", {"memory": "abc", "action": "forget"})
    assert "&#x27;abc&#x27; is not a record id; use the page&#x27;s buttons" in client.get("/memory/").content.decode()
    # Forget is soft: the memory moves to "Forgotten", where it is restored or deleted for good.
    client.post("/memory/", {"memory": mine.pk, "action": "forget"})
    assert LongTermMemory.objects.get(pk=mine.pk).forgotten_at is not None
    page = client.get("/memory/").content.decode()
    assert "<h2>Forgotten</h2>" in page
    assert page.index("likes tea") > page.index("<h2>Forgotten</h2>")
    client.post("/memory/", {"memory": mine.pk, "action": "restore"})
    assert LongTermMemory.objects.get(pk=mine.pk).forgotten_at is None
    assert "<h2>Forgotten</h2>" not in client.get("/memory/").content.decode()
    client.post("/memory/", {"memory": mine.pk, "action": "forget"})
    client.post("/memory/", {"memory": mine.pk, "action": "delete"})
    assert not LongTermMemory.objects.filter(pk=mine.pk).exists()


def test_memory_search_finds_by_word(operator: User) -> None:
    memory_write(owner=operator, kind="fact", content="the cat is called Miso")
    memory_write(owner=operator, kind="fact", content="prefers trains")
    body = signed_in(operator).get("/memory/?q=miso").content.decode()
    assert "the cat is called Miso" in body
    assert "prefers trains" not in body


def test_a_token_key_is_shown_once_and_revoke_removes_it(operator: User) -> None:
    client = signed_in(operator)
    answer = client.post("/account/", {"action": "create", "name": "laptop"})
    assert answer.status_code == 200
    assert answer["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=operator, name="laptop")
    key = re.search(r'id="new-key" value="([0-9a-f]{40})"', answer.content.decode())
    assert key is not None
    assert key.group(1).startswith(token.prefix)
    listing = client.get("/account/").content.decode()
    assert key.group(1) not in listing
    assert f"{token.prefix}…" in listing
    assert (
        "empty; give the token a name"
        in client.post("/account/", {"action": "create", "name": " "}, follow=True).content.decode()
    )
    client.post("/account/", {"action": "revoke", "token": token.pk})
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_anothers_token_cannot_be_revoked(operator: User) -> None:
    from core.accounts.services import token_create

    theirs = token_create(user=plain_user("eve"), name="theirs").token
    page = signed_in(operator).post("/account/", {"action": "revoke", "token": theirs.pk}, follow=True)
    assert f"No API token {theirs.pk} of yours" in page.content.decode()
    assert ApiToken.objects.filter(pk=theirs.pk).exists()


def test_configuration_lists_routes_with_readiness_and_probe_buttons_for_staff_only(
    replay_route: ModelRoute, operator: User
) -> None:
    staff = signed_in(operator).get("/configuration/").content.decode()
    assert 'data-probe="replay"' in staff
    assert "status-ready" in staff
    plain = signed_in(plain_user("ann")).get("/configuration/").content.decode()
    assert "data-probe" not in plain
    assert "replay" in plain


def test_configuration_reasons_are_one_a_line_and_past_three_behind_a_disclosure(
    replay_route: ModelRoute, operator: User
) -> None:
    # The example config file names many records this database does not hold: the config view lists each.
    body = signed_in(operator).get("/configuration/").content.decode()
    row = re.search(
        r'<tr><td>config</td><td class="status-blocked">blocked</td><td class="reasons-cell">(.*?)</td></tr>', body
    )
    assert row is not None, body
    shown = re.findall(r"<li>([^<]*)</li>", row[1].split("<details")[0])
    assert len(shown) == 3
    assert shown[0].startswith("the database differs from ")
    hidden = re.search(
        r'<details class="reasons-more"><summary>(\d+) more reasons</summary><ul class="reasons">(.*)</ul></details>',
        row[1],
    )
    assert hidden is not None
    assert len(re.findall(r"<li>", hidden[2])) == int(hidden[1]) > 0
    assert "the file; " not in row[1]  # never joined on one line
    assert "loaded; " not in row[1]
    # A record without reasons: a dash, which the narrow layout hides.
    assert '<td class="reasons-cell no-reasons">—</td>' in body


def test_usage_page_draws_a_bar_for_recorded_tokens(chat_session: AgentSession, operator: User) -> None:
    from telemetry.services import usage_record

    usage_record(
        owner=operator,
        request_id="web-usage-1",
        session_id=chat_session.pk,
        provider="replay",
        model="replay-1",
        input_tokens=30,
        output_tokens=12,
    )
    body = signed_in(operator).get("/usage/").content.decode()
    assert "42 tokens in 30 days" in body
    assert re.search(r'<rect class="bar" [^>]*><title>[A-Z][a-z]{2} \d\d: 42 tokens</title>', body)


def test_the_code_stylesheet_is_what_code_css_generates() -> None:
    from pathlib import Path

    from web.markdown import code_css

    shipped = (Path(__file__).resolve().parents[2] / "web" / "static" / "web" / "code.css").read_text()
    assert shipped.split("\n", 1)[1] == code_css()


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "unknown"), ("0", "$0"), ("0.00000001", "<$0.0001"), ("0.0123456", "$0.0123"), ("12.5", "$12.5000")],
)
def test_money_is_shown_to_four_places(value: str | None, shown: str) -> None:
    from decimal import Decimal

    from web.templatetags.web_format import usd

    assert usd(None if value is None else Decimal(value)) == shown


def test_reasoning_folds_and_tool_calls_are_cards_with_their_json(chat_session: AgentSession, operator: User) -> None:
    message_append(session_id=chat_session.pk, role="user", content="weather?")
    parts: list[Any] = [
        {"type": "reasoning", "text": "I should <look> it up"},
        {"type": "tool_call", "id": "c1", "name": "web_search", "arguments": {"q": "<b>rain</b>"}},
    ]
    message_append(session_id=chat_session.pk, role="assistant", content="", parts=parts)
    body = signed_in(operator).get(f"/chat/{chat_session.pk}/").content.decode()
    assert '<details class="reasoning"><summary>Reasoning</summary>' in body
    assert "I should &lt;look&gt; it up" in body
    assert (
        "<summary>Tool call: web_search</summary><pre>{\n  &quot;q&quot;: &quot;&lt;b&gt;rain&lt;/b&gt;&quot;\n}</pre>"
        in body
    )
