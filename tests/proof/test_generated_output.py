"""Nothing a test run rewrites is tracked: every writer's default output is under var/ (git-ignored).

The browser check (`pytest -m browser`) and `manage.py bootstrap_capture` write screenshots, a
summary and bootstrap captures. Run as part of the suite, they write under `var/evidence/`; only
`make evidence` (`scripts/evidence.py`) points them at the tracked `.buildprint/evidence/`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runtime.management.commands import bootstrap_capture
from tests.proof.scripts import ROOT, load_script

evidence = load_script("evidence")


def git_ignored(path: Path) -> bool:
    """True when git ignores `path` (exit 0 from `git check-ignore`)."""
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def test_the_browser_check_writes_under_var_by_default() -> None:
    env = {key: value for key, value in os.environ.items() if key != "AGENTCHAT_EVIDENCE_DIR"}
    code = "from tests.proof import browser; print(browser.SCREENS_DIR); print(browser.SUMMARY_FILE)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    screens, summary = (Path(line) for line in result.stdout.split())
    assert screens == ROOT / "var" / "evidence" / "screens"
    assert summary == ROOT / "var" / "evidence" / "browser-check.json"
    assert git_ignored(screens / "admin-index.png")
    assert git_ignored(summary)


def test_bootstrap_capture_writes_under_var_by_default() -> None:
    out = ROOT / bootstrap_capture.DEFAULT_OUT
    assert out.is_relative_to(ROOT / "var"), out
    assert git_ignored(out / "empty.json")


def test_only_make_evidence_points_the_writers_at_the_tracked_evidence(tmp_path: Path) -> None:
    gates = evidence.gates(tmp_path)

    assert dict(gates["browser-check"].env)["AGENTCHAT_EVIDENCE_DIR"] == str(tmp_path / "evidence")
    argv = gates["bootstrap-capture"].argv
    assert argv[argv.index("--out") + 1] == str(tmp_path / "evidence" / "bootstrap")
    tracked = subprocess.run(
        ["git", "ls-files", ".buildprint/evidence"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert ".buildprint/evidence/evidence-ledger.jsonl" in tracked.stdout.split()
    assert not git_ignored(ROOT / ".buildprint" / "evidence" / "browser-check.json")
