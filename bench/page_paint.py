"""Workload 17, the chat page's paint delay: a token painted in Chromium vs the same token read by an SSE client.

The app is served by uvicorn in a child process (as workload 12 serves it), static files collected.
A person's browser is Debian's Chromium driven by Playwright (`scripts/install-browser`), signed in
through the sign-in form, with the chat page open on a session whose run is streaming. Beside it, an
httpx-sse client reads the same run's stream directly. This process writes the run's text deltas
through the conversation services, as a worker does, each after a random 20-40 ms pause (a model's
pace; the writes never fall into step with the stream's poll), and keeps the wall-clock time each
append committed.

- The SSE client: each event's delay runs from its commit to the moment the client has parsed it.
- The page: a MutationObserver on the streaming text notes its length as chat.js appends the
  deltas, and the next animation frame (the frame that paints the change) stamps every length
  noted since the last one with `performance.timeOrigin + performance.now()`, the same wall clock.
  Every token has the same length, so a painted length says which tokens it shows.

The figure is the median page delay over the median SSE delay, per token, on the same tokens
(target <= 1.5x); the medians and 90th percentiles of both are beside it.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from typing import Any

from bench.harness import Target, median, unavailable

TOKENS = 300
TOKEN_CHARS = 6  # " t0000": every token the same length, so a painted length counts tokens
PAGE_USER = "bench-page"
# Installed once the page shows the warm-up delta: painted lengths (beyond `base`) with their frame's time.
OBSERVE = """() => {
  const text = document.querySelector('#run [data-text]');
  const base = text.textContent.length;
  const painted = [];
  let noted = null;
  window.__painted = painted;
  new MutationObserver(() => {
    if (noted === null) {
      requestAnimationFrame(() => {
        painted.push([noted, performance.timeOrigin + performance.now()]);
        noted = null;
      });
    }
    noted = text.textContent.length - base;
  }).observe(text, { childList: true, characterData: true, subtree: true });
}"""


def token(n: int) -> str:
    return f" t{n % 10_000:04d}"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _prepare() -> tuple[Any, str, dict[str, str]]:
    """The signed-in person (with a password for the form), a running run in a new session, the API token."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from core.accounts.services import token_create
    from core.conversation.services import run_create, session_create
    from core.models import ModelRoute, Provider, ProviderKind

    call_command("collectstatic", "--noinput", verbosity=0)
    password = secrets.token_urlsafe(18)
    user = User.objects.create_user(username=PAGE_USER, password=password)
    provider = Provider.objects.create(name="bench-page", kind=ProviderKind.REPLAY)
    ModelRoute.objects.create(
        alias="bench-page", provider=provider, model_id="replay-1", context_window_tokens=8_000, max_output_tokens=1_000
    )
    session = session_create(owner=user, title="paint", route_alias="bench-page")
    run = run_create(session_id=session.pk, status="running")
    headers = {"Authorization": f"Token {token_create(user=user, name='bench page').key}"}
    return run, password, headers


def _write(run_id: Any, committed: dict[int, float], start: threading.Event, done: threading.Event) -> None:
    """The worker's side, in its own thread: the warm-up delta, then `TOKENS` paced deltas and the finish."""
    from django.db import connection

    from core.conversation.services import run_event_append, run_finish

    try:
        run_event_append(run_id=run_id, event_type="text_delta", payload={"text": "ready"})
        start.wait(120)
        rng = random.Random(17)
        for n in range(TOKENS):
            time.sleep(rng.uniform(0.020, 0.040))
            event = run_event_append(run_id=run_id, event_type="text_delta", payload={"text": token(n)})
            committed[event.index] = time.time()
        time.sleep(0.3)  # the last paint lands before the run ends and the page re-renders
        run_finish(run_id=run_id, status="completed")
    finally:
        done.set()
        connection.close()


def _read(url: str, run_id: Any, headers: dict[str, str], delivered: dict[int, float]) -> None:
    import httpx
    from httpx_sse import connect_sse

    with (
        httpx.Client(timeout=120) as client,
        connect_sse(client, "GET", f"{url}/api/runs/{run_id}/stream/", headers=headers) as source,
    ):
        for sse in source.iter_sse():
            delivered[int(sse.id or 0)] = time.time()


def _page(url: str, session_id: Any, password: str, start: threading.Event, done: threading.Event) -> list[Any]:
    """Sign in, open the chat on the streaming run, observe the paints until the writer is done."""
    from playwright.sync_api import sync_playwright

    from tests.proof.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(f"{url}/accounts/login/?next=/chat/{session_id}/")
            page.get_by_label("User name").fill(PAGE_USER)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{url}/chat/{session_id}/")
            page.wait_for_function("() => document.querySelector('#run [data-text]')?.textContent.includes('ready')")
            page.evaluate(OBSERVE)
            start.set()
            while not done.wait(0.05):
                page.wait_for_timeout(50)
            painted: list[Any] = page.evaluate("() => window.__painted")
        finally:
            chromium.close()
    return painted


def w17_page_paint(ctx: Any) -> list[Any]:
    from bench.streaming import serve
    from tests.proof.browser import CHROMIUM

    title = f"chat page paint delay, {TOKENS} tokens: painted in Chromium vs read by an SSE client"
    if not CHROMIUM.exists():
        return [unavailable(17, "17.paint_vs_sse", title, ctx.level, ctx.vendor, "Chromium (scripts/install-browser)")]
    ctx.dbs.fresh("page-paint")
    run, password, headers = _prepare()
    app, url = serve(ctx.dbs.url())
    committed: dict[int, float] = {}
    delivered: dict[int, float] = {}
    start, done = threading.Event(), threading.Event()
    try:
        reader = threading.Thread(target=_read, args=(url, run.pk, headers, delivered))
        reader.start()
        writer = threading.Thread(target=_write, args=(run.pk, committed, start, done))
        writer.start()
        try:
            painted = _page(url, run.session_id, password, start, done)
        finally:
            start.set()
            writer.join(180)
            reader.join(60)
    finally:
        app.terminate()
        app.wait(30)
    indexes = sorted(committed)
    sse = [(delivered[index] - committed[index]) * 1000 for index in indexes]
    page: list[float] = []
    for n, index in enumerate(indexes):
        shown = next((at for length, at in painted if length >= (n + 1) * TOKEN_CHARS), None)
        if shown is None:
            raise RuntimeError(f"token {n} of {TOKENS} was never painted ({len(painted)} frames painted)")
        page.append(shown - committed[index] * 1000)
    row = ctx.row(
        17,
        "17.paint_vs_sse",
        title,
        figure=round(median(page) / median(sse), 2),
        reps=1,
        detail={
            "page median ms": round(median(page), 1),
            "page p90 ms": round(_percentile(page, 0.9), 1),
            "sse median ms": round(median(sse), 1),
            "sse p90 ms": round(_percentile(sse, 0.9), 1),
            "frames painted": float(len(painted)),
        },
    )
    return [ctx.judged(row, Target("<=", 1.5))]
