"""Drive Debian's Chromium through Playwright against a running Agent Chat server.

`AppServer` starts `manage.py runserver --noreload` on a free loopback port against a given
database; `BrowserCheck` logs into the admin, opens the admin index, every changelist linked from
it, the extra pages it is given, and the API pages, saving a full-page screenshot of each. Every
HTTP response of 400 or more (the page or any subresource), every request to a host other than
127.0.0.1, every failed request, console error and uncaught page error is recorded as a problem of
the page it happened on.

Playwright never downloads a browser here: it launches `/usr/bin/chromium` (installed by
`scripts/install-browser`) through `executable_path`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Error, Page, Request, Response, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AGENTCHAT_CHROMIUM", "/usr/bin/chromium"))
# Generated output goes under var/ (git-ignored); `make evidence` points AGENTCHAT_EVIDENCE_DIR at the
# tracked `.buildprint/evidence/` so only a deliberate evidence run rewrites tracked files.
EVIDENCE_DIR = Path(os.environ.get("AGENTCHAT_EVIDENCE_DIR") or ROOT / "var" / "evidence").resolve()
SCREENS_DIR = EVIDENCE_DIR / "screens"
SUMMARY_FILE = EVIDENCE_DIR / "browser-check.json"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed
# network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHANGELIST_HREF = re.compile(r"^/admin/(?P<app>[a-z0-9_]+)/(?P<model>[a-z0-9_]+)/$")


@dataclass
class Visit:
    """One page the browser opened."""

    name: str
    path: str
    status: int | None
    screenshot: str
    title: str = ""
    inline_groups: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    visits: list[Visit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [f"{visit.name} ({visit.path}): {problem}" for visit in self.visits for problem in visit.problems]

    def visit(self, name: str) -> Visit:
        for visit in self.visits:
            if visit.name == name:
                return visit
        raise KeyError(f"no page named {name!r} was visited; visited: {[v.name for v in self.visits]}")

    def write_summary(self, path: Path, **extra: object) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {**extra, "pages": [asdict(v) for v in self.visits], "notes": self.notes, "problems": self.problems}
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def chromium_version() -> str:
    result = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip()


class AppServer:
    """`manage.py runserver --noreload` (or another serving `command`) on a free loopback port, stopped by `stop()`."""

    def __init__(self, env: dict[str, str], command: Sequence[str] = ("runserver", "--noreload")) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log: IO[str] = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *command, f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runserver exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/admin/login/", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        raise RuntimeError(f"runserver did not answer on {self.base_url} within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.log.close()


@contextmanager
def running_server(env: dict[str, str], command: Sequence[str] = ("runserver", "--noreload")) -> Iterator[AppServer]:
    """The app on a free loopback port (`runserver` by default; the chat tests run `serve` with a worker)."""
    server = AppServer(env, command)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class BrowserCheck:
    """Visit pages in one logged-in browser context, recording problems and screenshots."""

    def __init__(self, page: Page, base_url: str, screens_dir: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.screens_dir = screens_dir
        self.report = Report()
        self.current: list[str] = []
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_request(self, request: Request) -> None:
        """Every page must work offline: any request to a host other than the server's is a problem."""
        parts = urlsplit(request.url)
        if parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname != "127.0.0.1":
            self.current.append(f"request leaves 127.0.0.1: {request.url}")

    def _on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.current.append(f"HTTP {response.status} for {self._short(response.url)}")

    def _on_request_failed(self, request: Request) -> None:
        self.current.append(f"request failed: {self._short(request.url)} ({request.failure})")

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.current.append(f"console error: {message.text}" + (f" ({self._short(where)})" if where else ""))

    def _on_page_error(self, error: Error) -> None:
        self.current.append(f"page error: {error.message}")

    def _short(self, url: str) -> str:
        return url.removeprefix(self.base_url)

    def open(self, name: str, path: str) -> Visit:
        """Open `path`, wait until the network is quiet, screenshot it and record what went wrong."""
        self.current = []
        response = self.page.goto(self.base_url + path, wait_until="networkidle")
        return self._record(name, path, response.status if response else None)

    def _record(self, name: str, path: str, status: int | None) -> Visit:
        shot = self.screens_dir / f"{name}.png"
        self.page.screenshot(path=str(shot), full_page=True)
        visit = Visit(
            name=name,
            path=path,
            status=status,
            screenshot=str(shot.relative_to(ROOT)) if shot.is_relative_to(ROOT) else str(shot),
            title=self.page.title(),
            inline_groups=self.page.locator(".inline-group").count(),
            problems=list(self.current),
        )
        if status is None:
            visit.problems.append("no response")
        self.report.visits.append(visit)
        return visit

    def login(self, username: str, password: str) -> Visit:
        self.current = []
        self.page.goto(self.base_url + "/admin/login/?next=/admin/", wait_until="networkidle")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        with self.page.expect_navigation(wait_until="networkidle") as navigation:
            self.page.click("input[type=submit]")
        response = navigation.value
        visit = self._record("admin-index", "/admin/", response.status if response else None)
        if self.page.url != self.base_url + "/admin/":
            visit.problems.append(f"login did not reach the admin index (at {self._short(self.page.url)})")
        return visit

    def changelist_paths(self) -> list[str]:
        """Every model changelist linked from the admin index (the page must be open)."""
        hrefs: list[str] = self.page.eval_on_selector_all(
            "#content-main a[href]", "links => links.map(link => link.getAttribute('href'))"
        )
        return sorted({href for href in hrefs if CHANGELIST_HREF.match(href)})


def run_check(
    *,
    base_url: str,
    username: str,
    password: str,
    extra_pages: Sequence[tuple[str, str]] = (),
    api_pages: Sequence[tuple[str, str]] = (),
    screens_dir: Path = SCREENS_DIR,
) -> Report:
    """Log in, open the admin index, every changelist, `extra_pages`, then `api_pages`."""
    screens_dir.mkdir(parents=True, exist_ok=True)
    for old in screens_dir.glob("*.png"):
        old.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            check = BrowserCheck(context.new_page(), base_url, screens_dir)
            check.login(username, password)
            for path in check.changelist_paths():
                match = CHANGELIST_HREF.match(path)
                if match is not None:
                    check.open(f"admin-{match['app']}-{match['model']}", path)
            for name, path in [*extra_pages, *api_pages]:
                check.open(name, path)
            context.close()
        finally:
            browser.close()
    return check.report
