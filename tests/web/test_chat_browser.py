"""The chat journey in a real Chromium against a real `manage.py serve` (uvicorn and a worker).

The replay provider streams slowly (3 characters a chunk, 120 ms apart), so the tests can watch a
reply grow, reload in the middle of it and stop it. axe-core (installed into var/ by
`scripts/install-axe`) checks every page: no serious or critical violation. Screenshots go to
`var/evidence/screens/` (`AGENTCHAT_EVIDENCE_DIR` under `make evidence`), at 360, 768 and 1280 px.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from playwright.sync_api import Page, Request, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.conversation.services import session_create
from core.models import AgentProfile, ModelRoute, Provider, ProviderKind, Team, TeamMember, ToolSpec
from tests.procs import run_manage, worker_env
from tests.proof import browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "var" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
USER = "chat-check"
WIDTHS = (360, 768, 1280)
STREAM_ABORTED = re.compile(r"request failed: /api/runs/[0-9a-f-]{36}/stream/\?after=\d+ \(net::ERR_ABORTED\)")
# The chat page's scripts and stylesheets, compressed as they travel: at most 150 KB.
STATIC_BUDGET = 150 * 1024
JOURNEY = [
    "sign in",
    "new chat",
    "the reply appears in several steps while it streams",
    "reload mid-stream, and it resumes",
    "stop a reply (Esc)",
    "regenerate to 2/2 and switch back",
    "edit a message",
    "a reply with script, onerror, javascript: links and raw HTML runs nothing",
    "search finds an old message",
    "import a ChatGPT-shaped export and open it",
    "the usage chart shows the turns' tokens",
    "axe-core: no serious or critical violation on any page at 360, 768 and 1280 px",
]
CHATGPT_EXPORT = ROOT / "tests" / "core" / "importing" / "samples" / "chatgpt_conversations.json"
# A reply this long streams for about 5 s: time to watch it grow, reload and stop it.
LONG = "tell me a long story " * 6
# The first reply streams for about 4 s, so its growth is seen even when the page is slow to load.
FIRST = "hello there, **friend**. " + "What is the weather like in the mountains today? " * 2


def require_tools() -> None:
    missing = [str(p) for p in (browser.CHROMIUM, AXE) if not p.exists()]
    if not missing:
        return
    why = f"missing {', '.join(missing)}: run scripts/install-browser and scripts/install-axe"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def server(replay_route: ModelRoute) -> Iterator[str]:
    require_tools()
    Provider.objects.filter(pk=replay_route.provider_id).update(options={"chunk_chars": 3, "delay_ms": 120})
    assert run_manage(["collectstatic", "--noinput", "--verbosity", "0"]).returncode == 0
    os.environ.setdefault("AGENTCHAT_OPERATOR_PASSWORD", "")
    password = secrets.token_urlsafe(18)
    made = run_manage(["ensure_operator", "--username", USER], env={"AGENTCHAT_OPERATOR_PASSWORD": password})
    assert made.returncode == 0, made.stderr
    command = ("serve", "--workers", "1")
    with browser.running_server(worker_env(AGENTCHAT_TURNS_PER_MINUTE="1000"), command) as running:
        yield f"{running.base_url}|{password}"


def axe_serious(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def static_weight(page: Page, url: str) -> dict[str, int]:
    """The bytes each script and stylesheet of the page at `url` transfers when the client accepts gzip
    (as browsers do): the URLs the page loaded, asked again of the server outside the browser's cache."""
    urls: list[str] = []

    def finished(request: Request) -> None:
        if request.resource_type in ("script", "stylesheet"):
            urls.append(request.url)

    page.on("requestfinished", finished)
    page.goto(url, wait_until="networkidle")
    page.remove_listener("requestfinished", finished)
    sizes: dict[str, int] = {}
    for found in urls:
        asked = urllib.request.Request(found, headers={"Accept-Encoding": "gzip"})  # noqa: S310
        with urllib.request.urlopen(asked, timeout=10) as response:  # noqa: S310
            encoding = response.headers.get("Content-Encoding", "identity")
            sizes[f"{found.rsplit('/', 1)[-1]} ({encoding})"] = len(response.read())
    return sizes


def sign_in(page: Page, base: str, password: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/")


def send(page: Page, text: str) -> None:
    page.locator("#composer").fill(text)
    page.locator("#composer").press("Enter")


def finished(page: Page, replies: int) -> None:
    """Wait until no run is open and the conversation shows `replies` assistant messages."""
    expect(page.locator("#run")).to_have_count(0, timeout=30_000)
    expect(page.locator("article.msg.assistant")).to_have_count(replies, timeout=30_000)


def watch_growth(page: Page) -> list[int]:
    """The lengths of the streaming text, sampled every 60 ms while the run is open."""
    page.locator("#run [data-text]").wait_for(timeout=15_000)
    lengths: list[int] = []
    for _ in range(200):
        value = page.evaluate("() => document.querySelector('#run [data-text]')?.textContent.length ?? -1")
        if value < 0:
            break
        if not lengths or value != lengths[-1]:
            lengths.append(value)
        page.wait_for_timeout(60)
    return lengths


def test_the_chat_journey_in_chromium(server: str) -> None:
    base, password = server.split("|")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
        # Any 4xx/5xx, failed request, request off 127.0.0.1, console or page error is a problem.
        problems = browser.BrowserCheck(page, base, browser.SCREENS_DIR)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        sign_in(page, base, password)
        weight = static_weight(page, f"{base}/")
        assert sum(weight.values()) <= STATIC_BUDGET, weight
        expect(page.locator("#composer")).to_be_focused()
        assert axe_serious(page) == []

        # A new chat: the reply appears in several steps while it streams, then as rendered Markdown.
        send(page, FIRST)
        expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
        grown = watch_growth(page)
        assert len([n for n in grown if n > 0]) >= 3, grown
        finished(page, 1)
        expect(page.locator("article.msg.assistant .md")).to_have_text(f"replay: {FIRST.replace('**', '').strip()}")
        expect(page.locator("article.msg.assistant .md strong")).to_have_text("friend")

        # Reload in the middle of a reply: the stream resumes and no character is lost or doubled.
        send(page, LONG)
        page.locator("#run [data-text]").wait_for()
        page.wait_for_function("() => document.querySelector('#run [data-text]')?.textContent.length > 20")
        page.reload()
        expect(page.locator("#run")).to_have_count(1)
        resumed_at = page.evaluate("() => document.querySelector('#run [data-text]').textContent.length")
        assert resumed_at > 20
        # No run_started comes again after a reload: the next text still says the reply is being written.
        expect(page.locator("#run [data-run-status]")).to_have_text("writing…")
        finished(page, 2)
        expect(page.locator("article.msg.assistant .md").nth(1)).to_have_text(f"replay: {LONG.strip()}")

        # Stop a reply with Esc: the run ends cancelled, keeping what had streamed.
        send(page, LONG + "again")
        page.wait_for_function("() => document.querySelector('#run [data-text]')?.textContent.length > 6")
        page.keyboard.press("Escape")
        expect(page.locator("#run")).to_have_count(0, timeout=15_000)
        stopped = page.locator("article.msg.assistant").last.inner_text()
        assert "again" not in stopped, stopped

        # Regenerate the last reply: 2/2, then back to 1/2.
        page.locator("article.msg.assistant").last.get_by_role("button", name="Regenerate").click()
        expect(page.locator("#run")).to_have_count(1)
        expect(page.locator("#run")).to_have_count(0, timeout=30_000)
        last = page.locator("article.msg.assistant").last
        expect(last.locator(".siblings")).to_contain_text("2/2")
        last.get_by_role("button", name="Previous version").click()
        expect(page.locator("article.msg.assistant").last.locator(".siblings")).to_contain_text("1/2")

        # Edit the first message: its new text is answered on a branch of its own.
        first = page.locator("article.msg.user").first
        first.get_by_role("button", name="Edit").click()
        page.get_by_label("Edit message 1").fill("edited question")
        page.get_by_label("Edit message 1").press("Enter")
        expect(page.locator("#run")).to_have_count(1)
        finished(page, 1)
        expect(page.locator("article.msg.user .md")).to_have_text("edited question")
        expect(page.locator("article.msg.user .siblings")).to_contain_text("2/2")
        assert axe_serious(page) == []

        # Hostile output: a reply echoing script, an onerror image, a javascript: link and raw HTML runs nothing.
        page.goto(f"{base}/")
        hostile = (
            '<script>window.__ran=1</script> <img src=x onerror="window.__ran=2"> '
            '[click](javascript:window.__ran=3) <b onmouseover="window.__ran=4">raw</b> <iframe src=/admin/></iframe>'
        )
        send(page, hostile)
        expect(page).to_have_url(re.compile(r"/chat/"))
        finished(page, 1)
        reply = page.locator("article.msg.assistant .md")
        assert reply.locator("script, img, iframe, b").count() == 0
        assert reply.locator("a").count() == 0
        reply.get_by_text("[click](javascript:window.__ran=3)").click()
        page.mouse.move(10, 10)
        assert page.evaluate("() => window.__ran") is None
        expect(reply).to_contain_text("<script>window.__ran=1</script>")

        # The history search finds the first conversation's old message.
        page.goto(f"{base}/")
        page.get_by_label("Search messages").fill("friend")
        page.get_by_label("Search messages").press("Enter")
        expect(page.locator("main")).to_contain_text("1 conversation matches")
        page.locator("main a[href*='#m']").first.click()
        expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/#m\d+$"))

        chat_url = page.url.split("#")[0]

        # Import a ChatGPT-shaped export: a worker imports it while the page follows; open what it brought.
        page.goto(f"{base}/")
        page.get_by_role("link", name="Import/export").click()
        expect(page).to_have_url(f"{base}/import/")
        page.get_by_label("Export file(s)").set_input_files(str(CHATGPT_EXPORT))
        page.get_by_role("button", name="Import").click()
        expect(page).to_have_url(re.compile(r"/import/[0-9a-f-]{36}/$"))
        import_url = page.url
        expect(page.locator("#import-job")).to_have_attribute("data-status", "completed", timeout=30_000)
        expect(page.locator("#import-job")).to_contain_text("Skipped")
        page.get_by_role("link", name="Trip to Lisbon").click()
        expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
        expect(page.locator("article.msg.user").first).to_be_visible()
        expect(page.get_by_role("link", name="Markdown")).to_have_attribute("href", re.compile(r"format=markdown$"))
        imported_url = page.url

        # Every page at every width: no serious or critical accessibility problem, a screenshot each.
        screens = browser.SCREENS_DIR / "chat"
        screens.mkdir(parents=True, exist_ok=True)
        pages = {
            "chat": chat_url,
            "new-chat": f"{base}/",
            "usage": f"{base}/usage/",
            "memory": f"{base}/memory/",
            "configuration": f"{base}/configuration/",
            "account": f"{base}/account/",
            "search": f"{base}/search/?q=friend",
            "import": f"{base}/import/",
            "import-job": import_url,
            "imported-chat": imported_url,
        }
        report: dict[str, list[str]] = {}
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for name, url in pages.items():
                page.goto(url)
                page.wait_for_load_state("networkidle")
                expect(page.locator(".notice:visible")).to_have_count(0)
                report[f"{name}@{width}"] = axe_serious(page)
                page.screenshot(path=str(screens / f"{name}-{width}.png"), full_page=True)
        # The usage chart shows the turns' tokens.
        page.goto(f"{base}/usage/")
        assert page.locator("svg.chart rect.bar").count() >= 30
        expect(page.locator(".card").nth(0)).not_to_contain_text(" 0 tokens")
        chromium.close()
    summary = {
        "steps": JOURNEY,
        "chromium": browser.chromium_version(),
        "database_vendor": connection.vendor,
        "streamed_lengths": grown,
        "resumed_at_characters": resumed_at,
        "chat_page_js_css_bytes_compressed": weight,
        "chat_page_js_css_total_over_budget": round(sum(weight.values()) / STATIC_BUDGET, 3),
        "screenshots": sorted(str(p.relative_to(browser.EVIDENCE_DIR)) for p in screens.glob("*.png")),
        "axe_serious": report,
        # The page closes a run stream itself (after run_finished, or on a reload): Chromium reports that as
        # an aborted request. Nothing else may fail.
        "problems": [p for p in problems.current if not STREAM_ABORTED.fullmatch(p)]
        + [f"dialog: {text}" for text in dialogs],
    }
    (browser.EVIDENCE_DIR / "chat-journey.json").write_text(json.dumps(summary, indent=2) + "\n")
    assert {key: found for key, found in report.items() if found} == {}
    assert summary["problems"] == []


def test_a_call_waiting_for_approval_is_approved_and_another_denied_in_the_page(server: str) -> None:
    ToolSpec.objects.create(name="clock", description="The time now", builtin="current_time", requires_approval=True)
    base, password = server.split("|")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 768, "height": 900}).new_page()
        sign_in(page, base, password)
        waiting = page.locator("#run [data-call]")

        # The call streams in as waiting, with its buttons; a reload renders the same from the server.
        send(page, "/tool clock")
        expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
        expect(waiting).to_contain_text("clock waits for your approval", timeout=30_000)
        page.reload()
        expect(waiting).to_have_count(1)
        assert axe_serious(page) == []
        waiting.get_by_role("button", name="Approve").click()
        finished(page, 2)
        expect(page.locator("article.msg.assistant .md").last).to_contain_text("replay: clock returned: ")
        expect(page.locator("article.msg.assistant .md").last).not_to_contain_text("denied")

        # Deny the next one: the model is told so, and the turn still finishes.
        send(page, "/tool clock")
        expect(waiting).to_contain_text("clock waits for your approval", timeout=30_000)
        waiting.get_by_role("button", name="Deny").click()
        finished(page, 4)
        expect(page.locator("article.msg.assistant .md").last).to_contain_text("denied by the user")
        chromium.close()


def test_a_members_work_streams_nested_under_the_leads_call_and_stays_there_on_reload(server: str) -> None:
    lead = AgentProfile.objects.create(name="boss", route=ModelRoute.objects.get(alias="replay"))
    slow = {"chunk_chars": 3, "delay_ms": 120, "prefix": "checked: "}
    provider = Provider.objects.create(name="replay-checker", kind=ProviderKind.REPLAY, options=slow)
    route = ModelRoute.objects.create(
        alias="replay-checker",
        provider=provider,
        model_id="replay-1",
        context_window_tokens=8_000,
        max_output_tokens=500,
    )
    checker = AgentProfile.objects.create(name="checker", route=route)
    team = Team.objects.create(name="pair", lead=lead)
    for position, member in enumerate((lead, checker)):
        TeamMember.objects.create(team=team, agent=member, position=position)
    session = session_create(owner=User.objects.get(username=USER), team_name="pair")
    base, password = server.split("|")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 768, "height": 900}).new_page()
        sign_in(page, base, password)
        page.goto(f"{base}/chat/{session.pk}/")
        send(page, "/tool ask_checker is water wet? " + "and is ice cold? " * 3)
        # While it streams, the member's text grows inside the card of the lead's call.
        nested = page.locator("#run [data-tool-call] [data-delegation] [data-delegation-text]")
        expect(nested).to_contain_text("checked: is water", timeout=30_000)
        expect(page.locator("#run [data-tool-call] [data-member]")).to_have_text("checker")
        finished(page, 2)
        # Rendered again from the server after the run (and on any reload): still under its call.
        page.reload()
        stored = page.locator("article.msg [data-tool-call] details.delegated")
        expect(stored.locator("[data-delegation-status]")).to_have_text("completed")
        expect(stored.locator(".delegated-md")).to_contain_text("checked: is water wet? and is ice cold?")
        assert axe_serious(page) == []
        page.locator("article.msg [data-tool-call] > summary").first.click()  # the call's card starts folded
        (browser.SCREENS_DIR / "chat").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(browser.SCREENS_DIR / "chat" / "delegated-768.png"), full_page=True)
        chromium.close()


# What a streaming reply's end looks like from the reader's seat: the bottom of its text, the top of the
# composer, and how far the page (or the conversation pane) is scrolled.
END_IN_VIEW = """() => {
  const text = document.querySelector('#run [data-text]');
  if (!text) return null;
  const bottom = text.getBoundingClientRect().bottom;
  const composer = document.querySelector('[data-composer]').getBoundingClientRect().top;
  const pane = document.querySelector('.conversation');
  return {length: text.textContent.length, bottom, composer, scrolled: window.scrollY + pane.scrollTop};
}"""


def test_a_streaming_reply_keeps_its_end_in_view_until_the_reader_scrolls_up(
    server: str, replay_route: ModelRoute
) -> None:
    # Long lines quickly: 40 characters a chunk, so the reply outgrows the window in a few seconds.
    Provider.objects.filter(pk=replay_route.provider_id).update(options={"chunk_chars": 40, "delay_ms": 120})
    base, password = server.split("|")
    long_text = "the end of a long reply should stay in view " * 30
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        for width, height in ((360, 640), (1280, 600)):
            page = chromium.new_context(viewport={"width": width, "height": height}).new_page()
            sign_in(page, base, password)
            send(page, long_text)
            expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
            page.wait_for_function(f"() => ({END_IN_VIEW})()?.length > 700", timeout=30_000)
            # The text has grown well past the window, and between two deltas its last line sits above the
            # composer (a frame after a delta lands, the page has followed it).
            in_view = f"""() => {{
              const seen = ({END_IN_VIEW})();
              const limit = Math.min(seen?.composer + 2, innerHeight);
              return seen && seen.scrolled > 0 && 0 < seen.bottom && seen.bottom <= limit;
            }}"""
            try:
                page.wait_for_function(in_view, timeout=10_000)
            except PlaywrightTimeout:
                pytest.fail(f"at {width} px the reply's end left the view: {page.evaluate(END_IN_VIEW)}")

            # The reader scrolls up to read: the page stays where they put it while the text goes on.
            page.evaluate("() => { window.scrollTo(0, 0); document.querySelector('.conversation').scrollTop = 0; }")
            grown_from = page.evaluate(END_IN_VIEW)["length"]
            page.wait_for_function(f"() => ({END_IN_VIEW})()?.length > {grown_from + 120}", timeout=30_000)
            assert page.evaluate(END_IN_VIEW)["scrolled"] == 0, width
            finished(page, 1)
        chromium.close()
