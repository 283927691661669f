"""The top bar is one line at 360, 768 and 1,280 px (below 768 px the links fold into a menu that opens
without JavaScript), and the configuration page's reasons never push a page sideways."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from core.models import ToolSpec
from tests.proof import browser
from tests.web.test_chat_browser import WIDTHS, axe_serious, server, sign_in  # noqa: F401 - `server` is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# One line of the bar: its links' line height and padding, well under two lines (about 70 px).
ONE_LINE_PX = 50


def bar_height(page: Page) -> float:
    box = page.locator("header.topbar").bounding_box()
    assert box is not None
    return box["height"]


def overflowing(page: Page, regions: str) -> list[str]:
    """The page, and each of its `regions` (a CSS selector), wider than what shows it."""
    found: list[str] = page.evaluate(
        """(regions) => [document.documentElement, ...(regions ? document.querySelectorAll(regions) : [])]
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => `${e.getAttribute('aria-label') || e.tagName}: ${e.scrollWidth} > ${e.clientWidth}`)""",
        regions,
    )
    return found


def test_the_top_bar_is_one_line_and_the_configuration_fits_at_every_width(server: str) -> None:  # noqa: F811
    # A tool whose long name and reasons would once have widened its table past a phone's width.
    ToolSpec.objects.create(name="memory_remember_everything_said", description="x", builtin="current_time")
    base, password = server.split("|")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_in(page, base, password)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for path in ("/", "/usage/", "/configuration/", "/search/?q=tram"):
                page.goto(base + path, wait_until="networkidle")
                assert bar_height(page) < ONE_LINE_PX, (path, width, bar_height(page))
                # The configuration's tables too (a usage table may scroll in its own region).
                assert overflowing(page, ".table-wrap" if path == "/configuration/" else "") == [], (path, width)
            menu = page.locator("details.menu summary")
            links = page.locator("header nav.wide")
            if width < 768:
                expect(menu).to_be_visible()
                expect(links).to_be_hidden()
            else:
                expect(menu).to_be_hidden()
                expect(links.get_by_role("link", name="Usage")).to_be_visible()
        # The configuration page's reasons: one a line, and past three behind a disclosure.
        page.goto(f"{base}/configuration/", wait_until="networkidle")
        expect(page.locator("table.readiness td.reasons-cell").first).to_be_visible()
        chromium.close()

        # Without JavaScript the menu still opens, lists every page and the sign-out, and its links work.
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 360, "height": 900}, java_script_enabled=False).new_page()
        sign_in(page, base, password)
        page.locator("details.menu summary").click()
        menu = page.get_by_role("navigation", name="Pages (menu)")
        expect(menu.get_by_role("link")).to_have_text(
            ["Chat", "Usage", "Memory", "Configuration", "Import/export", "Account", "Admin"]
        )
        expect(page.locator(".menu-panel").get_by_role("button", name=re.compile(r"^Sign out "))).to_be_visible()
        menu.get_by_role("link", name="Configuration").click()
        expect(page).to_have_url(f"{base}/configuration/")
        expect(page.locator(".menu-panel nav a[aria-current=page]")).to_have_text("Configuration")
        chromium.close()

        # With the menu open, axe-core finds nothing serious or critical.
        chromium = playwright.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 360, "height": 900}).new_page()
        sign_in(page, base, password)
        page.locator("details.menu summary").click()
        expect(page.locator(".menu-panel")).to_be_visible()
        assert axe_serious(page) == []
        chromium.close()
