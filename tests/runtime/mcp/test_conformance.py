"""The MCP conformance suite (`@modelcontextprotocol/conformance`, client mode) against Agent Chat's own client:
`manage.py mcp_conformance_client` drives `runtime.mcp`'s sessions and tool calls.

Each scenario's checks are written to `<evidence>/mcp-conformance/` (var/evidence by default; `make
evidence` points AGENTCHAT_EVIDENCE_DIR at the tracked evidence) as `<scenario>.json`, with a summary
in `report.md`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404 (the suite's own CLI)
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.mcp.servers import CONFORMANCE, ROOT

SCENARIOS = ("initialize", "tools_call")
EVIDENCE = Path(os.environ.get("AGENTCHAT_EVIDENCE_DIR") or ROOT / "var" / "evidence").resolve() / "mcp-conformance"


def run_scenario(scenario: str, out: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    command = f"{sys.executable} {ROOT / 'manage.py'} mcp_conformance_client"
    result = subprocess.run(  # nosec B603 (the suite's pinned CLI, our own command)
        # The client is a Django command (start-up included); a loaded CI machine needs more than the 30 s default.
        [
            str(CONFORMANCE),
            "client",
            "--command",
            command,
            "--scenario",
            scenario,
            "--timeout",
            "180000",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    [checks_file] = out.glob("*/checks.json")
    checks: list[dict[str, Any]] = json.loads(checks_file.read_text(encoding="utf-8"))
    return result, checks


@pytest.mark.usefixtures("npm_installed")
def test_conformance_client_scenarios_pass(tmp_path: Path) -> None:
    EVIDENCE.mkdir(parents=True, exist_ok=True)
    rows = []
    for scenario in SCENARIOS:
        result, checks = run_scenario(scenario, tmp_path / scenario)
        statuses = {check["id"]: check["status"] for check in checks}
        (EVIDENCE / f"{scenario}.json").write_text(json.dumps(checks, indent=2) + "\n", encoding="utf-8")
        for name in ("stdout.txt", "stderr.txt"):
            found = next((tmp_path / scenario).glob(f"*/{name}"), None)
            if found is not None:
                shutil.copyfile(found, EVIDENCE / f"{scenario}-client-{name}")
        failed = sorted(name for name, status in statuses.items() if status == "FAILURE")
        rows.append(f"| {scenario} | {result.returncode} | {len(statuses)} | {', '.join(failed) or 'none'} |")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert failed == []
        assert "SUCCESS" in statuses.values()
    (EVIDENCE / "report.md").write_text(
        "# MCP conformance (client mode)\n\n"
        '`@modelcontextprotocol/conformance client --command "python manage.py mcp_conformance_client"`, '
        "pinned in tests/mcp/npm/package-lock.json.\n\n"
        "| scenario | exit | checks | failed |\n| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    # The scenarios' own success checks: the handshake and the add_numbers call.
    assert json.loads((EVIDENCE / "initialize.json").read_text())[0]["id"] == "mcp-client-initialization"
    assert any(check["id"] == "tool-add-numbers" for check in json.loads((EVIDENCE / "tools_call.json").read_text()))
