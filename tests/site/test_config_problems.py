"""The user's configuration: made from the tracked example by `make run`; a bad file never stops the
app: `load_config` prints and records every problem, the database keeps the last good configuration,
and the admin index shows the problems with their locations."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from core.config.contracts import Problem
from core.config.selectors import config_load_problems, config_load_status_path
from core.models import ModelRoute

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "agentchat.example.toml"
GOOD = """
[[providers]]
name = "replay"
kind = "replay"

[[routes]]
alias = "main"
provider = "replay"
model_id = "replay-1"
context_window_tokens = 8000
max_output_tokens = 1000
is_default = true
"""
BAD = GOOD.replace("max_output_tokens = 1000", "max_output_tokens = 9000") + '\n[[routez]]\nalias = "x"\n'


@pytest.fixture
def no_load_record(db: None) -> Iterator[Path]:
    """No record of an earlier load against the test database, before and after the test."""
    path = config_load_status_path()
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def load(path: Path) -> None:
    call_command("load_config", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def test_a_failed_load_records_every_problem_and_keeps_the_last_good_configuration(
    no_load_record: Path, tmp_path: Path
) -> None:
    config = tmp_path / "agentchat.toml"
    config.write_text(GOOD)
    assert config_load_problems() is None
    load(config)
    clean = config_load_problems()
    assert clean is not None
    assert (clean.file, clean.problems) == (str(config), ())

    config.write_text(BAD)
    with pytest.raises(CommandError, match="2 problems found"):
        load(config)

    report = config_load_problems()
    assert report is not None
    assert report.file == str(config)
    assert report.checked_at.endswith("Z")
    assert {p.location for p in report.problems} == {"routez", "routes[0].max_output_tokens"}
    assert all(isinstance(p, Problem) and p.message for p in report.problems)
    assert ModelRoute.objects.get(alias="main").max_output_tokens == 1000  # the last good configuration

    config.write_text(GOOD)
    load(config)
    fixed = config_load_problems()
    assert fixed is not None
    assert fixed.problems == ()


def test_an_unreadable_file_is_recorded_as_one_problem(no_load_record: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[providers]\nname = ")
    with pytest.raises(CommandError, match="not valid TOML"):
        load(broken)
    report = config_load_problems()
    assert report is not None
    [problem] = report.problems
    assert (problem.location, problem.message.startswith(f"{broken}: not valid TOML")) == ("", True)


def test_a_damaged_load_record_reads_as_a_problem_not_an_error(no_load_record: Path) -> None:
    no_load_record.parent.mkdir(parents=True, exist_ok=True)
    no_load_record.write_text("{not json")
    report = config_load_problems()
    assert report is not None
    assert "run manage.py load_config again" in report.problems[0].message


def test_the_admin_index_shows_the_last_loads_problems(no_load_record: Path, tmp_path: Path, operator: User) -> None:
    client = Client()
    client.force_login(operator)
    config = tmp_path / "agentchat.toml"
    config.write_text(BAD)
    with pytest.raises(CommandError):
        load(config)

    page = client.get("/admin/").content.decode()

    assert "config-load-problems" in page
    assert f"<code>{config}</code>" in page
    assert "<code>routez</code>: unknown section" in page
    assert "<code>routes[0].max_output_tokens</code>" in page
    assert "runs with the last" in page

    config.write_text(GOOD)
    load(config)
    assert "config-load-problems" not in client.get("/admin/").content.decode()


def test_make_creates_the_user_config_from_the_example_once(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    target = tmp_path / "agentchat.toml"

    def make() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-s", "--no-print-directory", f"USER_CONFIG={target}", str(target)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = make()
    assert first.returncode == 0, first.stderr
    assert target.read_text() == EXAMPLE.read_text()
    target.write_text(GOOD)
    second = make()
    assert second.returncode == 0, second.stderr
    assert target.read_text() == GOOD  # never overwritten


def test_the_user_config_is_ignored_and_the_example_is_tracked() -> None:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    assert git("check-ignore", "--no-index", "-q", "config/agentchat.toml").returncode == 0
    assert git("ls-files", "--error-unmatch", "config/agentchat.example.toml").returncode == 0
