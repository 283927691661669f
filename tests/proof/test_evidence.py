"""`scripts/evidence.py` refuses without a complete phase record and appends one well-formed ledger row.

The gates are replaced by a recording runner that answers with canned outputs, so these tests do
not run the whole suite recursively; `make evidence` runs the real gates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.proof.scripts import ROOT, load_script

evidence = load_script("evidence")
ROLES = ["product-architect", "data-persistence", "integration-runtime", "test-and-verification"]
PHASE = "phase-runs/01-contracts-storage"


def phase_record(buildprint: Path, *, returns: bool = True) -> None:
    base = buildprint / PHASE
    (base / "handoffs").mkdir(parents=True)
    (base / "returns").mkdir()
    (base / "team-gates.md").write_text("# Team gates\n")
    for role in ROLES:
        (base / "handoffs" / f"{role}.md").write_text(f"# Handoff: {role}\n")
        if returns:
            body = f"# Return: {role}\n"
            if role == "integration-runtime":
                body += "\n## Security boundary review\n\nEvery endpoint requires authentication.\n"
            (base / "returns" / f"{role}.md").write_text(body)


class CannedRunner:
    """Answers each gate with a canned result and remembers which gates were asked for."""

    def __init__(self, buildprint: Path, *, failing: set[str], commands: str) -> None:
        self.buildprint = buildprint
        self.failing = failing
        self.commands = commands
        self.asked: list[str] = []

    def __call__(self, gate: Any) -> Any:
        self.asked.append(gate.name)
        outputs = {
            "git-commit": "0123456789abcdef0123456789abcdef01234567\n",
            "git-status": "",
            "pytest": "........\n120 passed, 3 skipped, 1 deselected in 12.30s\n",
            "fault-suite": "5 passed, 118 deselected in 2.00s\n",
            "fault-collect": "tests/core/test_crash.py::test_kill\n\n4/124 tests collected (120 deselected) in 0.30s\n",
            "browser-check": "1 passed, 122 deselected in 9.00s\n",
            "bandit": json.dumps({"metrics": {"_totals": {"SEVERITY.HIGH": 0, "SEVERITY.MEDIUM": 0, "loc": 900}}}),
            "no-fake-scan": "no-fake scan: 100 files scanned, 0 findings\n",
            "secret-scan": "secret scan: 90 files scanned, 0 findings\n",
            "secret-scan-database": "secret scan --database: 29 tables, 138 rows, 0 findings\n",
            "manage-commands": self.commands,
            "mypy": "Success: no issues found in 80 source files\n",
            "provider-adapters": "".join(
                f"tests/runtime/providers/test_live_kinds.py::test_text[{kind}] PASSED\n"
                for kind in ("openai_responses", "anthropic", "google", "ollama")
            )
            + "tests/runtime/providers/test_openai_chat.py::test_refusal PASSED\n"
            + "tests/runtime/test_providers.py::test_replay_echoes_in_chunks_with_usage PASSED\n"
            + "6 passed in 3.00s\n",
            "live-local": "2 passed in 40.00s\n",
            "worker-recovery": "".join(f"{test} PASSED\n" for test in evidence.RECOVERY_TESTS.values())
            + f"{len(evidence.RECOVERY_TESTS)} passed in 90.00s\n",
            "mcp-conformance": "1 passed in 30.00s\n",
        }
        if gate.name == "browser-check":
            summary = {"chromium": "Chromium 156", "pages": [{"screenshot": "screens/admin-index.png"}], "problems": []}
            (self.buildprint / "evidence").mkdir(parents=True, exist_ok=True)
            (self.buildprint / "evidence" / "browser-check.json").write_text(json.dumps(summary))
        if gate.name == "bootstrap-capture":
            (self.buildprint / "evidence" / "bootstrap").mkdir(parents=True, exist_ok=True)
            (self.buildprint / "evidence" / "bootstrap" / "empty.json").write_text("{}")
        if gate.name in self.failing:
            return evidence.GateResult(gate.name, 1, "Found 2 errors in 1 file (checked 80 source files)\n", 1.5)
        return evidence.GateResult(gate.name, 0, outputs.get(gate.name, "ok\n"), 1.0)


def ledger_rows(buildprint: Path) -> list[dict[str, Any]]:
    lines = (buildprint / "evidence" / "evidence-ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_refuses_while_phase_record_files_are_missing(tmp_path: Path) -> None:
    phase_record(tmp_path, returns=False)

    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evidence.py"), "--buildprint", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.startswith("evidence: refusing to append a ledger row: the phase record is incomplete.")
    missing = [line.split("missing: ")[1] for line in result.stderr.splitlines() if "missing: " in line]
    assert missing == [str(tmp_path / PHASE / "returns" / f"{role}.md") for role in ROLES]
    assert not (tmp_path / "evidence" / "evidence-ledger.jsonl").exists()


def test_refuses_when_a_return_is_empty(tmp_path: Path) -> None:
    phase_record(tmp_path)
    (tmp_path / PHASE / "returns" / "data-persistence.md").write_text("  \n")
    runner = CannedRunner(tmp_path, failing=set(), commands="migrate bootstrap_capture")

    assert evidence.record(tmp_path, runner) == 2
    assert runner.asked == []


def test_appends_one_row_with_every_proof_type_and_failures_recorded(tmp_path: Path) -> None:
    phase_record(tmp_path)
    runner = CannedRunner(tmp_path, failing={"mypy"}, commands="migrate ensure_operator load_config")
    now = datetime(2026, 11, 24, 18, 30, 5, tzinfo=UTC)

    code = evidence.record(tmp_path, runner, now=lambda: now)

    assert code == 1
    assert "bootstrap-capture" not in runner.asked
    assert runner.asked[:2] == ["git-commit", "git-status"]
    [row] = ledger_rows(tmp_path)
    assert list(row) == [
        "phase_id",
        "proof_id",
        "recorded_at",
        "commit",
        "dirty",
        "database_vendor",
        "proofs",
        "gates",
    ]
    assert row["phase_id"] == "01-contracts-storage"
    assert row["proof_id"] == "proof-01-contracts-storage"
    assert row["recorded_at"] == "2026-11-24T18:30:05Z"
    assert row["commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert row["dirty"] is False
    assert row["database_vendor"] in {"sqlite", "postgresql"}
    proofs = row["proofs"]
    assert list(proofs) == [
        *evidence.PROOF_TYPES,
        "provider_adapter_config_test",
        "live_provider",
        "worker_retry_cancel_recovery",
        "repeatable_browser_e2e",
    ]
    assert all(set(proof) == {"status", "figures", "detail"} for proof in proofs.values())
    assert {name: proof["status"] for name, proof in proofs.items()} == {
        "unit_or_integration_test": "fail",
        "runtime_or_browser_trace_or_blocker": "fail",
        "persistence_roundtrip_or_blocker": "pass",
        "security_boundary_review_or_blocker": "pass",
        "no_fake_scan_pass": "pass",
        "evidence_ledger_entry": "pass",
        "provider_adapter_config_test": "pass",
        "live_provider": "blocker",
        "worker_retry_cancel_recovery": "pass",
        "repeatable_browser_e2e": "fail",
    }
    recovery = proofs["worker_retry_cancel_recovery"]["figures"]
    assert recovery["passed"] == len(evidence.RECOVERY_TESTS)
    assert recovery["scenarios"] == dict.fromkeys(evidence.RECOVERY_TESTS, True)
    assert "the chat journey wrote no summary" in proofs["repeatable_browser_e2e"]["detail"]
    assert proofs["provider_adapter_config_test"]["figures"]["kinds"] == list(evidence.ADAPTER_KINDS)
    assert proofs["live_provider"]["figures"]["local_model_server_turns"]["passed"] == 2
    unit = proofs["unit_or_integration_test"]
    assert unit["figures"]["passed"] == 120
    assert unit["figures"]["skipped"] == 3
    assert unit["figures"]["mypy"] is False
    assert unit["detail"].startswith("mypy failed (exit 1): Found 2 errors")
    assert "manage.py bootstrap_capture does not exist yet" in proofs["runtime_or_browser_trace_or_blocker"]["detail"]
    assert proofs["persistence_roundtrip_or_blocker"]["figures"]["fault_tests"] == 4
    assert proofs["security_boundary_review_or_blocker"]["figures"]["bandit"]["medium"] == 0
    assert row["gates"]["mypy"] == {"ok": False, "exit": 1, "seconds": 1.5}
    assert row["gates"]["bootstrap-capture"]["ok"] is False


def test_the_adapter_proof_fails_when_a_kind_has_no_passing_test(tmp_path: Path) -> None:
    results = {
        "provider-adapters": evidence.GateResult(
            "provider-adapters", 0, "tests/runtime/providers/test_live_kinds.py::test_text[anthropic] PASSED\n", 1.0
        ),
        "live-local": evidence.GateResult("live-local", 1, "1 failed in 9.00s\n", 9.0),
    }

    proofs = evidence.provider_proofs(results)

    adapters = proofs["provider_adapter_config_test"]
    assert adapters.status == "fail"
    assert adapters.figures["kinds"] == ["anthropic"]
    assert "openai" in adapters.detail
    assert "replay" in adapters.detail
    assert proofs["live_provider"].status == "fail"
    assert "make live-local failed" in proofs["live_provider"].detail


def test_the_recovery_proof_fails_naming_each_scenario_without_a_passing_test() -> None:
    [sigterm] = [test for test in evidence.RECOVERY_TESTS.values() if "sigterm" in test]
    output = "".join(
        f"{test} {'FAILED' if test == sigterm else 'PASSED'}\n" for test in evidence.RECOVERY_TESTS.values()
    )
    results = {"worker-recovery": evidence.GateResult("worker-recovery", 1, output + "1 failed, 7 passed\n", 80.0)}

    proof = evidence.recovery_proof(results)

    assert proof.status == "fail"
    assert [name for name, ok in proof.figures["scenarios"].items() if not ok] == ["sigterm_mid_turn"]
    assert proof.figures["failed"] == 1
    assert proof.detail.startswith("worker-recovery failed (exit 1)")
    # A run where the gate passed but a scenario's test was not run (renamed, deselected) fails too.
    results = {"worker-recovery": evidence.GateResult("worker-recovery", 0, "1 passed\n", 5.0)}
    proof = evidence.recovery_proof(results)
    assert proof.status == "fail"
    assert proof.detail.startswith("no passing test for the scenarios ['disconnect_resume_at_10_points'")


def test_every_recovery_scenario_names_a_test_that_exists() -> None:
    for scenario, test in evidence.RECOVERY_TESTS.items():
        path, name = test.split("::")
        source = (evidence.ROOT / path).read_text(encoding="utf-8")
        assert f"def {name}(" in source, f"{scenario}: {test} does not exist"


def test_all_gates_passing_gives_pass_rows_appended_after_earlier_ones(tmp_path: Path) -> None:
    phase_record(tmp_path)
    runner = CannedRunner(tmp_path, failing=set(), commands="migrate load_config bootstrap_capture")
    assert evidence.record(tmp_path, runner) == 0

    assert evidence.record(tmp_path, runner) == 0

    rows = ledger_rows(tmp_path)
    assert len(rows) == 2
    second = rows[1]["proofs"]
    assert all(second[name]["status"] == "pass" for name in evidence.PROOF_TYPES)
    assert second["live_provider"]["status"] == "blocker"
    assert second["evidence_ledger_entry"]["figures"]["row"] == 2
    runtime = second["runtime_or_browser_trace_or_blocker"]["figures"]
    assert runtime["captured_files"] == ["bootstrap/empty.json"]
    assert runtime["screenshots"] == ["screens/admin-index.png"]


def test_missing_security_section_fails_the_security_proof(tmp_path: Path) -> None:
    phase_record(tmp_path)
    (tmp_path / PHASE / "returns" / "integration-runtime.md").write_text("# Return\n\nLooks fine.\n")
    runner = CannedRunner(tmp_path, failing=set(), commands="bootstrap_capture")

    assert evidence.record(tmp_path, runner) == 1

    security = ledger_rows(tmp_path)[0]["proofs"]["security_boundary_review_or_blocker"]
    assert security["status"] == "fail"
    assert security["detail"] == "returns/integration-runtime.md has no security section"


def test_no_fault_tests_fails_the_persistence_proof(tmp_path: Path) -> None:
    phase_record(tmp_path)
    runner = CannedRunner(tmp_path, failing=set(), commands="bootstrap_capture")
    runner_outputs = runner.__call__

    def no_fault_tests(gate: Any) -> Any:
        if gate.name == "fault-suite":
            return evidence.GateResult(gate.name, 5, "no tests ran in 0.10s\n", 0.1)
        if gate.name == "fault-collect":
            return evidence.GateResult(gate.name, 5, "no tests collected (124 deselected) in 0.2s\n", 0.2)
        return runner_outputs(gate)

    assert evidence.record(tmp_path, no_fault_tests) == 1

    persistence = ledger_rows(tmp_path)[0]["proofs"]["persistence_roundtrip_or_blocker"]
    assert persistence["status"] == "fail"
    assert persistence["figures"]["fault_tests"] == 0
    assert persistence["detail"].startswith("fault-suite failed (exit 5): no tests ran")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("120 passed, 3 skipped in 12.30s", {"passed": 120, "skipped": 3}),
        ("= 1 failed, 2 passed, 1 error, 4 deselected in 3.00s =", {"failed": 1, "passed": 2, "errors": 1}),
        ("no tests ran in 0.01s", {"passed": 0}),
    ],
)
def test_pytest_counts_come_from_the_summary_line(line: str, expected: dict[str, int]) -> None:
    counts = evidence.pytest_counts(f"....\n{line}\n")

    assert {key: counts[key] for key in expected} == expected


def test_the_browser_e2e_proof_needs_the_journey_and_the_page_screenshots_of_this_run(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "chat-journey.json").write_text(json.dumps({"steps": ["sign in"], "axe_serious": {}, "problems": []}))
    since = (folder / "chat-journey.json").stat().st_mtime

    missing = evidence.chat_journey_proof(tmp_path, since)
    assert missing.status == "fail"
    assert "the page screenshots wrote no summary" in missing.detail

    shots = {"pages": ["sign-in"], "screenshots": {"sign-in": ["screens/pages/sign-in-360-dark.png"]}, "problems": []}
    (folder / "page-screens.json").write_text(json.dumps(shots))
    proof = evidence.chat_journey_proof(tmp_path, since)
    assert (proof.status, proof.detail) == ("pass", "")
    assert proof.figures["page_screens"]["screenshots"]["sign-in"] == ["screens/pages/sign-in-360-dark.png"]

    (folder / "page-screens.json").write_text(json.dumps({**shots, "problems": ["console error: boom"]}))
    failed = evidence.chat_journey_proof(tmp_path, since)
    assert (failed.status, failed.detail) == ("fail", "page screenshots: console error: boom")
