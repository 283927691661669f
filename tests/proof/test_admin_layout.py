"""The admin read at 1,280 px in a real Chromium: nothing clipped, nothing run together.

A session with two replay turns (messages, a run, usage events) is built through the services;
then the usage changelist, the session change page and the run changelist are opened at 1,280 x
900 and measured. Screenshots land in `var/evidence/screens/layout/` (or under
AGENTCHAT_EVIDENCE_DIR).
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, sync_playwright

from tests.owners import op_user
from tests.procs import run_manage, worker_env
from tests.proof import browser
from tests.proof.test_browser import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPERATOR = "layout-check"


def boxes(page: Page, selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.eval_on_selector_all(
        selector,
        """cells => cells.map(cell => {
            const r = cell.getBoundingClientRect();
            return {text: cell.innerText.trim(), left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                    width: r.width, height: r.height, scrollWidth: cell.scrollWidth, clientWidth: cell.clientWidth,
                    lineHeight: parseFloat(getComputedStyle(cell).lineHeight) || 16};
        })""",
    )
    return found


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when the two boxes share any area (half a pixel of rounding allowed across)."""
    left, right, top, bottom = (float(a[k]) for k in ("left", "right", "top", "bottom"))
    across = left < float(b["right"]) - 0.5 and float(b["left"]) < right - 0.5
    return across and top < float(b["bottom"]) and float(b["top"]) < bottom


def columns_fit(page: Page) -> list[dict[str, Any]]:
    """Every changelist column header lies inside 1,280 px and clear of the filter sidebar."""
    sidebar = boxes(page, "#changelist-filter")
    headers = boxes(page, "#result_list thead th")
    for header in headers:
        assert header["right"] <= 1280, f"column {header['text']!r} is cut off at 1,280 px: {header}"
        for box in sidebar:
            assert not overlaps(header, box), f"column {header['text']!r} lies under the filter sidebar"
    return headers


def visible_at_center(page: Page, selector: str) -> bool:
    """True when the element is what the user sees at its centre (not covered, not clipped away)."""
    result: bool = page.eval_on_selector(
        selector,
        """el => {
            el.scrollIntoView({block: 'center', inline: 'center'});
            const r = el.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2;
            if (x < 0 || y < 0 || x > window.innerWidth || y > window.innerHeight) return false;
            const hit = document.elementFromPoint(x, y);
            return hit !== null && (hit === el || el.contains(hit));
        }""",
    )
    return result


def build_session() -> str:
    from core.conversation.services import session_create
    from runtime.turns import turn_run

    session = session_create(owner=op_user(), title="Layout check session")
    turn_run(session_id=session.pk, user_text="What does the admin show?")
    turn_run(session_id=session.pk, user_text="And the usage?")
    return str(session.pk)


def test_admin_pages_fit_1280_pixels() -> None:
    require_chromium()
    password = secrets.token_urlsafe(18)
    for args in (["collectstatic", "--noinput", "--verbosity", "0"], ["load_config"]):
        result = run_manage(args)
        assert result.returncode == 0, result.stderr
    result = run_manage(["ensure_operator", "--username", OPERATOR], env={"AGENTCHAT_OPERATOR_PASSWORD": password})
    assert result.returncode == 0, result.stderr
    session_id = build_session()
    screens = browser.SCREENS_DIR / "layout"  # its own folder: the browser check clears screens/*.png
    screens.mkdir(parents=True, exist_ok=True)

    with browser.running_server(worker_env()) as server, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(browser.CHROMIUM), headless=True, args=browser.CHROMIUM_ARGS
        )
        try:
            page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(server.base_url + "/admin/login/?next=/admin/")
            page.fill("#id_username", OPERATOR)
            page.fill("#id_password", password)
            with page.expect_navigation():
                page.click("input[type=submit]")

            # Usage changelist: the totals header reads as separate words; every column is visible.
            page.goto(server.base_url + "/admin/telemetry/usageevent/", wait_until="networkidle")
            page.screenshot(path=str(screens / "layout-usage-events.png"), full_page=True)
            totals = boxes(page, "#usage-totals th")
            assert len(totals) == 9, totals
            for left, right in itertools.pairwise(totals):
                assert left["right"] <= right["left"] + 0.5, (left, right)
            assert all(cell["scrollWidth"] <= cell["clientWidth"] + 1 for cell in totals), totals
            headers = columns_fit(page)
            assert [h["text"].lower() for h in headers][-2:] == ["cost (usd)", "latency ms"], headers
            assert visible_at_center(page, "#result_list thead th.column-cost_usd"), "the cost column is hidden"

            # Session change page: inline rows carry no caption repeating the session id; token counts
            # say "reported" or "estimated"; times show seconds.
            path = reverse("admin:core_agentsession_change", args=[session_id])
            page.goto(server.base_url + path, wait_until="networkidle")
            page.screenshot(path=str(screens / "layout-session-change.png"), full_page=True)
            shown = boxes(page, "#messages-group td.original p, #checkpoints-group td.original p")
            captions = [c["text"] for c in shown if c["height"] > 0]
            assert not any(session_id in caption for caption in captions), captions
            rows = page.inner_text("#messages-group")
            assert "reported" in rows, rows
            assert page.locator("#messages-group img[src*='icon-no']").count() == 0
            assert page.locator("#messages-group td.field-created").first.inner_text().count(":") == 2, rows

            # Run changelist: a run id stays on one line.
            page.goto(server.base_url + "/admin/core/run/", wait_until="networkidle")
            page.screenshot(path=str(screens / "layout-runs.png"), full_page=True)
            ids = boxes(page, "#result_list tbody .field-id a")
            assert ids, "no run rows"
            assert [h["text"].lower() for h in columns_fit(page)][-1] == "finished at"
            assert all(link["height"] <= link["lineHeight"] * 1.5 for link in ids), f"a run id wraps: {ids}"
        finally:
            chromium.close()
