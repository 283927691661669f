"""`manage.py bootstrap_capture [--out DIR]`: record the real bootstrap responses of three states.

Each state is built in its own throw-away SQLite database (a temporary file), never the
operator's: the command starts a child `manage.py bootstrap_capture --state NAME` process whose
DATABASE_URL points at that file; the child migrates it, loads what the state needs through
the services, and asks `GET /api/bootstrap/` through Django's test client as a signed-in user.

- empty:   a migrated database and nothing else;
- blocked: a copy of the example configuration whose replay provider is disabled, loaded, no provider key set;
- ready:   the example configuration loaded and one session with a replay turn (no provider key set).
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404: runs this same manage.py with fixed arguments
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

STATES = ("empty", "blocked", "ready")
# Under var/ (git-ignored); `make evidence` passes `--out .buildprint/evidence/bootstrap`.
DEFAULT_OUT = Path("var") / "evidence" / "bootstrap"
EXAMPLE_CONFIG = Path("config") / "agentchat.example.toml"
CAPTURE_USERNAME = "bootstrap-capture"


def _child_env(database: Path, config: Path) -> dict[str, str]:
    """The child's environment: the throw-away database, the example config, no provider key."""
    from core.config.loading import config_file_read

    env = dict(os.environ)
    env["DATABASE_URL"] = f"sqlite:///{database}"
    env["AGENTCHAT_CONFIG"] = str(config)
    document = config_file_read(config)
    for name in [p.api_key_env for p in document.providers] + [v for m in document.mcp_servers for v in m.env_vars]:
        if name:
            env.pop(name, None)
    return env


class Command(BaseCommand):
    help = (
        "Write the real /api/bootstrap/ responses for the empty, blocked and ready states (each built in a "
        "throw-away SQLite database) to DIR/empty.json, blocked.json, ready.json and DIR/index.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default: {DEFAULT_OUT})")
        parser.add_argument("--state", choices=STATES, help=argparse_hidden())
        parser.add_argument("--database", help=argparse_hidden())
        parser.add_argument("--target", help=argparse_hidden())

    def handle(self, *args: Any, **options: Any) -> None:
        if options["state"]:
            self._capture_one(options["state"], Path(options["database"] or ""), Path(options["target"] or ""))
            return
        out = Path(options["out"]).resolve()
        out.mkdir(parents=True, exist_ok=True)
        base = Path(settings.BASE_DIR)
        config = (base / EXAMPLE_CONFIG).resolve()
        written: list[tuple[str, dict[str, Any]]] = []
        for state in STATES:
            with tempfile.TemporaryDirectory(prefix=f"bootstrap-{state}-") as scratch:
                database = Path(scratch) / "capture.sqlite3"
                target = out / f"{state}.json"
                state_config = _state_config(state, config, Path(scratch))
                argv = [sys.executable, str(base / "manage.py"), "bootstrap_capture", "--state", state]
                argv += ["--database", str(database), "--target", str(target)]
                result = subprocess.run(  # noqa: S603  # nosec B603: this manage.py, fixed arguments, no shell
                    argv,
                    cwd=base,
                    env=_child_env(database, state_config),
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if result.returncode != 0:
                    raise CommandError(f"capturing the {state} state failed:\n{result.stderr.strip()}")
                written.append((state, json.loads(target.read_text(encoding="utf-8"))))
                self.stdout.write(f"wrote {target}")
        (out / "index.md").write_text(_index(written), encoding="utf-8")
        self.stdout.write(f"wrote {out / 'index.md'}")

    def _capture_one(self, state: str, database: Path, target: Path) -> None:
        """In the child: refuse any database but the throw-away file, build `state`, write the response."""
        name = Path(str(connection.settings_dict["NAME"])).resolve()
        if connection.vendor != "sqlite" or not database.name or name != database.resolve():
            raise CommandError(
                f"--state builds a throw-away database only; DATABASE_URL must point at {database} (got {name})"
            )
        call_command("migrate", interactive=False, verbosity=0)
        if state != "empty":
            _load_state(state)
        body, etag = _fetch()
        payload = json.loads(body)
        if etag is None:
            raise CommandError("the bootstrap response has no ETag")
        target.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _state_config(state: str, example: Path, scratch: Path) -> Path:
    """The example file, or for `blocked` a copy of it whose replay provider is disabled."""
    if state != "blocked":
        return example
    from core.config.loading import config_file_read

    text = example.read_text(encoding="utf-8")
    marker = 'kind = "replay"\n'
    copy = scratch / "agentchat.blocked.toml"
    copy.write_text(text.replace(marker, marker + "enabled = false\n", 1), encoding="utf-8")
    replay = [p for p in config_file_read(copy).providers if p.kind == "replay"]
    if not replay or any(p.enabled for p in replay):
        raise CommandError(f"{example}: could not disable its replay provider (no line {marker.strip()!r})")
    return copy


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def _load_state(state: str) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from core.accounts.services import operator_ensure
    from core.config.loading import config_file_read
    from core.config.services import config_document_apply
    from core.conversation.services import session_create, worker_beat
    from runtime.turns import turn_run
    from runtime.worker.lease import process_worker_id

    config_document_apply(document=config_file_read(Path(settings.AGENTCHAT_CONFIG)), prune=False)
    if state == "ready":
        # The capture account's session, so its bootstrap counts it.
        operator_ensure(username=CAPTURE_USERNAME, password=None)
        owner = get_user_model()._default_manager.get(username=CAPTURE_USERNAME)
        session = session_create(owner=owner, title="First chat")
        turn_run(session_id=session.pk, user_text="hello")
        # This process ran the turn as a worker does, and says so: the chat view needs a live worker.
        worker_beat(
            worker_id=process_worker_id()[-64:],
            host="capture",
            pid=os.getpid(),
            started_at=timezone.now(),
            current_run_id=None,
        )


def _fetch() -> tuple[bytes, str | None]:
    """`GET /api/bootstrap/` through the test client, signed in as a capture account."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from core.accounts.services import operator_ensure

    operator_ensure(username=CAPTURE_USERNAME, password=None)
    user = get_user_model()._default_manager.get(username=CAPTURE_USERNAME)
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    response = client.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    if response.status_code != 200:
        raise CommandError(f"GET /api/bootstrap/ answered {response.status_code}: {response.content[:500]!r}")
    return response.content, response.headers.get("ETag")


def _index(written: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        "# Bootstrap responses",
        "",
        "Written by `manage.py bootstrap_capture` (never by hand). Each file is the body of a real",
        "`GET /api/bootstrap/`, asked through Django's test client as a signed-in user, against a",
        "throw-away SQLite database (a temporary file, migrated from scratch, deleted afterwards):",
        "",
        "- `empty.json`: a freshly migrated database, nothing loaded.",
        "- `blocked.json`: a copy of the example configuration (`config/agentchat.example.toml`) with",
        "  `enabled = false` on the replay provider, loaded through the configuration services, no provider",
        "  key in the environment.",
        "- `ready.json`: the example configuration loaded and one session with a replay turn",
        "  (`runtime.turns.turn_run`), no provider key in the environment.",
        "",
        "| file | " + " | ".join(name for name in _view_names(written)) + " |",
        "| --- | " + " | ".join("---" for _ in _view_names(written)) + " |",
    ]
    for state, body in written:
        views = body["views"]
        lines.append(f"| `{state}.json` | " + " | ".join(views[name]["state"] for name in _view_names(written)) + " |")
    lines.append("")
    return "\n".join(lines)


def _view_names(written: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return list(written[0][1]["views"]) if written else []
