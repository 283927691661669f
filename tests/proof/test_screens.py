"""Screenshots of every page a person uses, in each state, at 360, 768 and 1280 px, light and dark.

A real Chromium against a real `manage.py serve` (uvicorn and a worker, the replay provider streaming
slowly; the `server` fixture of the chat journey). The pages, in the states the issue names: sign-in;
the chat empty, with a conversation, streaming, and with a tool call awaiting approval; search, usage,
memory, configuration and account. The theme follows the system setting, so each page is shot with
`prefers-color-scheme` emulated as light and as dark. Any 4xx/5xx, failed request, request off
127.0.0.1, console or page error fails the test.

The files go to `<evidence>/screens/pages/<page>-<width>-<theme>.png` with a summary in
`<evidence>/page-screens.json`: under `var/evidence/` in a test run, under the tracked
`.buildprint/evidence/` only when `make evidence` sets `AGENTCHAT_EVIDENCE_DIR`.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from playwright.sync_api import Page, expect, sync_playwright

from core.models import ToolSpec
from memory.services import episode_upsert, memory_write
from tests.proof import browser
from tests.web.test_chat_browser import (  # noqa: F401 - `server` is the fixture this test uses
    STREAM_ABORTED,
    USER,
    WIDTHS,
    finished,
    send,
    server,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

THEMES = ("light", "dark")
SCREENS = browser.SCREENS_DIR / "pages"
SUMMARY = browser.EVIDENCE_DIR / "page-screens.json"
PAGES = (
    "sign-in",
    "chat-empty",
    "chat-conversation",
    "chat-streaming",
    "chat-tool-approval",
    "search",
    "usage",
    "memory",
    "configuration",
    "account",
)
CONVERSATION = (
    "Plan a **weekend** in Lisbon:\n\n- a museum\n- a long lunch\n\n"
    "```python\nfor day in ('Saturday', 'Sunday'):\n    print(day)\n```"
)
# At 3 characters every 120 ms this streams for about a minute: long enough for six screenshots.
STREAMING = "Tell me the story of the tram up the hill, slowly. " * 30


def shoot(page: Page, name: str, ready: Callable[[Page], None]) -> list[str]:
    """`name` at every width and theme: `ready` opens the page and waits for its state, then a screenshot:
    of the whole page, except the chat's, which is shot as a person sees it (the conversation scrolls
    in its own pane, at its end)."""
    shots: list[str] = []
    for theme in THEMES:
        page.emulate_media(color_scheme=theme)  # type: ignore[arg-type]
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            ready(page)
            path = SCREENS / f"{name}-{width}-{theme}.png"
            page.screenshot(path=str(path), full_page=not name.startswith("chat-"))
            shots.append(str(path.relative_to(browser.EVIDENCE_DIR)))
    return shots


def opened(url: str, waits_for: str = "main") -> Callable[[Page], None]:
    def ready(page: Page) -> None:
        page.goto(url, wait_until="networkidle")
        page.locator(waits_for).first.wait_for()

    return ready


def seed_memory() -> None:
    owner = User.objects.get(username=USER)
    memory_write(owner=owner, kind="preference", content="Prefers trains to planes.", pinned=True)
    memory_write(owner=owner, kind="fact", content="Lives in Porto; works from home on Fridays.")
    episode_upsert(
        owner=owner,
        day=datetime.date.today(),
        timezone_name="UTC",
        summary="Planned a weekend in Lisbon: a museum, a long lunch, the tram up the hill.",
        source="manual",
    )


def test_every_page_in_each_state_at_three_widths_light_and_dark(server: str) -> None:  # noqa: F811
    base, password = server.split("|")
    ToolSpec.objects.create(name="clock", description="The time now", builtin="current_time", requires_approval=True)
    seed_memory()  # before Playwright's event loop starts: the ORM refuses to run inside it
    SCREENS.mkdir(parents=True, exist_ok=True)
    for old in SCREENS.glob("*.png"):
        old.unlink()
    shots: dict[str, list[str]] = {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
        problems = browser.BrowserCheck(page, base, SCREENS)
        shots["sign-in"] = shoot(page, "sign-in", opened(f"{base}/accounts/login/", "form"))
        sign_in(page, base, password)
        shots["chat-empty"] = shoot(page, "chat-empty", opened(f"{base}/", "#composer"))

        send(page, CONVERSATION)
        expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
        finished(page, 1)
        conversation = page.url
        shots["chat-conversation"] = shoot(page, "chat-conversation", opened(conversation, "article.msg.assistant"))

        page.goto(f"{base}/")
        send(page, STREAMING)
        expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
        streaming = page.url

        def mid_stream(page: Page) -> None:
            page.goto(streaming)
            page.wait_for_function("() => document.querySelector('#run [data-text]')?.textContent.length > 30")

        shots["chat-streaming"] = shoot(page, "chat-streaming", mid_stream)
        page.keyboard.press("Escape")
        expect(page.locator("#run")).to_have_count(0, timeout=15_000)

        page.goto(f"{base}/")
        send(page, "/tool clock")
        expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
        expect(page.locator("#run [data-call]")).to_contain_text("waits for your approval", timeout=30_000)
        shots["chat-tool-approval"] = shoot(page, "chat-tool-approval", opened(page.url, "#run [data-call]"))

        for name, path in {
            "search": "/search/?q=weekend",
            "usage": "/usage/",
            "memory": "/memory/",
            "configuration": "/configuration/",
            "account": "/account/",
        }.items():
            shots[name] = shoot(page, name, opened(base + path))
        chromium.close()

    unexpected = [p for p in problems.current if not STREAM_ABORTED.fullmatch(p)]
    SUMMARY.write_text(
        json.dumps(
            {
                "pages": list(PAGES),
                "widths": list(WIDTHS),
                "themes": list(THEMES),
                "screenshots": shots,
                "chromium": browser.chromium_version(),
                "database_vendor": connection.vendor,
                "problems": unexpected,
            },
            indent=2,
        )
        + "\n"
    )
    assert unexpected == []
    assert list(shots) == list(PAGES)
    assert all(len(found) == len(WIDTHS) * len(THEMES) for found in shots.values()), shots
