"""A green gate prints little beyond its summary lines: no bandit log noise, no pytest percentage counter."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_make_security_prints_only_its_summary_when_clean() -> None:
    result = make("security")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == ["bandit: no issues at medium severity or above"], lines


def test_make_pytest_prints_dots_and_the_summary_without_a_percentage_counter() -> None:
    result = make("pytest", "PYTEST_ARGS=tests/proof/test_generated_output.py")

    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"\[\s*\d+%\]", result.stdout), result.stdout
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "...", lines
    assert re.fullmatch(r"3 passed in [\d.]+s", lines[-1]), lines
