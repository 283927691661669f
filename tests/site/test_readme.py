"""Every command and request the README shows works, run as a newcomer would run it.

The README's fenced `sh` blocks and its inline `.venv/bin/python manage.py …` and `curl …` spans
are run in order against a fresh SQLite database in a temporary folder: `make` lines as dry runs
(`make -n`, the target must exist), manage.py commands as subprocesses, curl lines through bash
against `manage.py runserver` on a free port (each request must answer 2xx: `curl --fail-with-body`).
The placeholders the README uses are filled in from what the earlier steps handed out: `KEY` (the
token `drf_create_token` printed), `SESSION_ID` (the session `chat new` created), `FILE`.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.proof.browser import running_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MANAGE = ".venv/bin/python manage.py "
# Commands that need a person at a terminal (a password prompt): the command must exist, nothing more.
INTERACTIVE = {"changepassword"}
FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`((?:\.venv/bin/python manage\.py|curl) [^`]+)`")


@dataclass
class Step:
    kind: str  # "make", "manage" or "shell"
    text: str
    line: int


def readme_steps() -> list[Step]:
    """The README's commands in reading order: each `sh` block, and each inline command outside blocks."""
    text = README.read_text(encoding="utf-8")
    steps: list[tuple[int, Step]] = []
    covered: list[tuple[int, int]] = []
    for block in FENCE.finditer(text):
        covered.append(block.span())
        body = block.group(1)
        line = text.count("\n", 0, block.start()) + 2
        if "curl " in body:
            steps.append((block.start(), Step("shell", body, line)))
            continue
        for offset, raw in enumerate(body.splitlines()):
            command = raw.split("  #")[0].split(" # ")[0].strip()
            if command.startswith("make "):
                steps.append((block.start() + offset, Step("make", command, line + offset)))
            elif command.startswith(MANAGE):
                steps.append((block.start() + offset, Step("manage", command, line + offset)))
            elif command:
                steps.append((block.start() + offset, Step("shell", command, line + offset)))
    for span in INLINE.finditer(text):
        if any(start <= span.start() < end for start, end in covered):
            continue
        command = span.group(1)
        kind = "manage" if command.startswith(MANAGE) else "shell"
        steps.append((span.start(), Step(kind, command, text.count("\n", 0, span.start()) + 1)))
    return [step for _, step in sorted(steps, key=lambda item: item[0])]


class Newcomer:
    """A fresh database and what the README's earlier steps handed out."""

    def __init__(self, workdir: Path) -> None:
        self.env = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY")}
        self.env.pop("AGENTCHAT_CONFIG", None)
        self.env["DATABASE_URL"] = f"sqlite:///{workdir / 'readme.sqlite3'}"
        self.env["AGENTCHAT_OPERATOR_PASSWORD"] = secrets.token_urlsafe(18)
        self.values = {"FILE": "config/agentchat.example.toml"}

    def manage(self, args: list[str], where: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{where}: manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def fill(self, text: str) -> str:
        for name, value in self.values.items():
            text = re.sub(rf"\b{name}\b", value, text)
        return text


def argv_of(command: str, newcomer: Newcomer) -> list[str]:
    """A manage.py line's arguments: optional `[…]` parts dropped, placeholders filled in."""
    without_optional = re.sub(r"\s*\[[^\]]*\]", "", command.removeprefix(MANAGE))
    return shlex.split(newcomer.fill(without_optional))


@pytest.mark.slow
@pytest.mark.django_db
def test_every_command_and_request_in_the_readme_works(tmp_path: Path) -> None:
    if shutil.which("curl") is None or shutil.which("make") is None:
        pytest.skip("curl and make are needed to run the README's commands")
    steps = readme_steps()
    assert sum(step.kind == "shell" for step in steps) >= 4, steps
    newcomer = Newcomer(tmp_path)
    # What `make run` does before serving (the README's first command).
    for args in (["migrate", "--noinput"], ["load_config"], ["ensure_operator"]):
        newcomer.manage(args, "make run")

    with running_server(newcomer.env) as server:
        for step in steps:
            where = f"README.md line {step.line}: {step.text.splitlines()[0]}"
            if step.kind == "make":
                target = step.text.split()[1]
                result = subprocess.run(
                    ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
                )
                assert result.returncode == 0, f"{where}: no make target {target!r}:\n{result.stderr}"
            elif step.kind == "manage":
                argv = argv_of(step.text, newcomer)
                if argv[0] in INTERACTIVE:
                    assert argv[0] in newcomer.manage(["help", "--commands"], where).split(), where
                    continue
                output = newcomer.manage(argv, where)
                if argv[0] == "drf_create_token":
                    newcomer.values["KEY"] = re.search(r"Generated token (\w+)", output).group(1)  # type: ignore[union-attr]
                if argv[:2] == ["chat", "new"]:
                    newcomer.values["SESSION_ID"] = newcomer.manage(
                        [
                            "shell",
                            "-c",
                            "from core.models import AgentSession as S; print(S.objects.latest('created').pk)",
                        ],
                        where,
                    ).split()[-1]
            else:
                script = newcomer.fill(step.text).replace("http://127.0.0.1:8000", server.base_url)
                script = re.sub(r"\bcurl\b", "curl -sS --fail-with-body", script)
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", script],
                    cwd=tmp_path,
                    env=newcomer.env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                assert result.returncode == 0, (
                    f"{where}: failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
                )
