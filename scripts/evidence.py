"""`make evidence`: run every gate of a phase and append one row to the evidence ledger.

    python scripts/evidence.py                  # phase 01-contracts-storage, this checkout
    python scripts/evidence.py --buildprint DIR # another phase record (used by the tests)

It refuses (exit 2) while the phase record is incomplete: `team-gates.md`, and a handoff and a
return for each of the four review roles. Otherwise it runs the gates, each as its own process:
ruff check, ruff format --check, mypy, bandit, makemigrations --check, check --deploy, the whole
pytest suite (without the browser check) with counts from its summary line, the fault and
persistence tests (`-m "fault or persistence"`), the no-fake scan, the secret scan of tracked
files and of a fresh database, the browser check (`-m browser`), `manage.py bootstrap_capture`, the MCP
conformance suite in client mode (its report under `evidence/mcp-conformance/`), and the
worker and stream recovery tests against the real processes `manage.py serve` starts (`RECOVERY_TESTS`:
kill -9 of a worker, SIGTERM, cancel, disconnects; the `worker_retry_cancel_recovery` proof).

Then it appends ONE JSON line to `<buildprint>/evidence/evidence-ledger.jsonl`: the phase and proof
ids, the UTC time, the git commit and whether the tree was dirty, the database vendor, and for each
required proof type `{"status": "pass" | "fail" | "blocker", "figures": {...}, "detail": "..."}`.
A failing gate makes its proof `fail`; nothing is left out. The exit code is 0 when every proof is
`pass` (or the expected `blocker` for the live provider), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PHASE_ID = "01-contracts-storage"
PROOF_ID = f"proof-{PHASE_ID}"
ROLES = ("product-architect", "data-persistence", "integration-runtime", "test-and-verification")
PROOF_TYPES = (
    "unit_or_integration_test",
    "runtime_or_browser_trace_or_blocker",
    "persistence_roundtrip_or_blocker",
    "security_boundary_review_or_blocker",
    "no_fake_scan_pass",
    "evidence_ledger_entry",
)
HOSTED_KINDS = ("openai", "anthropic", "google")
# Each adapter kind and what names its tests in `pytest -v` output (the live kinds run against local
# servers replaying recorded wire traffic, tests/runtime/providers/recordings).
ADAPTER_TEST_MARKS: dict[str, tuple[str, ...]] = {
    "openai": ("[openai_responses]", "::test_openai_kind_"),
    "anthropic": ("[anthropic]",),
    "google": ("[google]",),
    "ollama": ("[ollama]",),
    "openai_compatible": ("test_openai_chat.py::",),
    "replay": ("test_providers.py::test_replay",),
}
ADAPTER_KINDS = tuple(ADAPTER_TEST_MARKS)
# The worker_retry_cancel_recovery proof: each scenario and the test that shows it against the real
# processes `manage.py serve` starts (uvicorn and supervised workers) or a uvicorn server, read by a
# real SSE client (`file::test` as `pytest -v` names it).
RECOVERY_TESTS: dict[str, str] = {
    "disconnect_resume_at_10_points": "tests/runtime/streaming/test_stream_server.py::"
    "test_disconnecting_at_ten_random_points_and_resuming_loses_and_repeats_nothing",
    "four_slow_turns_stream_before_any_finishes": "tests/workers/test_serve.py::"
    "test_four_slow_turns_in_four_sessions_all_start_before_any_finishes",
    "kill_9_worker_interrupted_within_lease_then_retry": "tests/workers/test_serve.py::"
    "test_a_worker_killed_mid_turn_ends_its_stream_interrupted_within_the_lease_and_a_retry_streams_to_completion",
    "silent_3_leases_then_cancel_within_1s_keeps_streamed_text": "tests/workers/test_serve.py::"
    "test_a_provider_silent_for_three_leases_keeps_its_run_and_still_cancels_within_a_second",
    "sigterm_mid_turn": "tests/workers/test_serve_sigterm.py::"
    "test_sigterm_mid_turn_stops_everything_and_leaves_no_run_running",
    "commit_without_enqueue_run_by_sweeper": "tests/workers/test_serve.py::"
    "test_a_turn_committed_but_never_enqueued_is_run_by_the_sweeper",
    "20_turns_in_10_sessions_no_gap": "tests/workers/test_serve.py::"
    "test_a_turn_answers_202_and_completes_in_a_worker_and_20_turns_in_10_sessions_leave_no_gap",
    "100_idle_streams_connections_threads_rss": "tests/runtime/streaming/test_stream_server.py::"
    "test_a_hundred_idle_streams_hold_at_most_two_connections_and_no_thread_each",
}
RECOVERY_FILES = tuple(dict.fromkeys(test.split("::")[0] for test in RECOVERY_TESTS.values()))
LIVE_PROVIDER_DETAIL = (
    "no credentials for the hosted providers (openai, anthropic, google) in this environment; their adapters "
    "stream recorded wire traffic from local servers (provider_adapter_config_test)"
)
PYTEST_COUNT_RE = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)\b")
COLLECTED_RE = re.compile(r"(\d+)(?:/(\d+))? tests? collected")
BANDIT_DIRS = ("agentchat_site", "core", "memory", "telemetry", "runtime", "web", "scripts")
SECURITY_HEADING_RE = re.compile(r"^#+ .*security", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Gate:
    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 3600


@dataclass
class GateResult:
    name: str
    returncode: int
    output: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 6) -> str:
        return "\n".join(self.output.strip().splitlines()[-lines:])


GateRunner = Callable[[Gate], GateResult]


@dataclass
class Proof:
    status: str
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "figures": self.figures, "detail": self.detail}


def run_process(gate: Gate) -> GateResult:
    """Run a gate as a child process in the project root, capturing stdout and stderr together."""
    env = {**os.environ, **dict(gate.env)}
    started = time.monotonic()
    try:
        result = subprocess.run(
            list(gate.argv),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=gate.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return GateResult(gate.name, 124, f"{out}\ntimed out after {gate.timeout}s", time.monotonic() - started)
    except OSError as exc:
        return GateResult(gate.name, 127, f"could not start {gate.argv[0]}: {exc}", time.monotonic() - started)
    return GateResult(gate.name, result.returncode, result.stdout, round(time.monotonic() - started, 1))


# --- phase record ---------------------------------------------------------------------------------


def phase_dir(buildprint: Path) -> Path:
    return buildprint / "phase-runs" / PHASE_ID


def required_files(buildprint: Path) -> list[Path]:
    base = phase_dir(buildprint)
    files = [base / "team-gates.md"]
    for role in ROLES:
        files += [base / "handoffs" / f"{role}.md", base / "returns" / f"{role}.md"]
    return files


def missing_files(buildprint: Path) -> list[Path]:
    return [path for path in required_files(buildprint) if not (path.is_file() and path.read_text().strip())]


# --- parsing --------------------------------------------------------------------------------------


def pytest_counts(output: str) -> dict[str, int]:
    """Counts from pytest's final summary line (`12 passed, 1 skipped, 2 deselected in 3.1s`)."""
    summary = ""
    for line in reversed(output.strip().splitlines()):
        if PYTEST_COUNT_RE.search(line) or "no tests ran" in line:
            summary = line
            break
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "deselected": 0}
    for number, word in PYTEST_COUNT_RE.findall(summary):
        key = {"error": "errors", "warning": "warnings"}.get(word, word)
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def collected_count(output: str) -> int:
    match = COLLECTED_RE.search(output)
    return int(match.group(1)) if match else 0


def bandit_counts(output: str) -> dict[str, int]:
    """Issue counts by severity from bandit's JSON report (stdout)."""
    start = output.find("{")
    try:
        report = json.loads(output[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}
    totals = report.get("metrics", {}).get("_totals", {})
    return {
        "high": int(totals.get("SEVERITY.HIGH", 0)),
        "medium": int(totals.get("SEVERITY.MEDIUM", 0)),
        "low": int(totals.get("SEVERITY.LOW", 0)),
        "lines_of_code": int(totals.get("loc", 0)),
    }


def scan_findings(output: str) -> int:
    match = re.search(r"(\d+) findings", output)
    return int(match.group(1)) if match else -1


def database_vendor() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return "postgresql"
    if not url or url.startswith("sqlite:"):
        return "sqlite"
    return url.split(":", 1)[0]


def git_state(runner: GateRunner) -> tuple[str, bool]:
    head = runner(Gate("git-commit", ("git", "rev-parse", "HEAD"), timeout=60))
    status = runner(Gate("git-status", ("git", "status", "--porcelain"), timeout=60))
    commit = head.output.strip() if head.ok else "unknown"
    return commit, bool(status.output.strip()) or not status.ok


# --- the gates ------------------------------------------------------------------------------------


def venv_tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def gates(buildprint: Path = ROOT / ".buildprint") -> dict[str, Gate]:
    """The gates; the browser check and bootstrap_capture write into `<buildprint>/evidence/` (by default
    they write under var/, so that only this deliberate run rewrites the tracked evidence)."""
    py = sys.executable
    evidence_dir = buildprint / "evidence"
    pytest = (venv_tool("pytest"), "-p", "no:cacheprovider", "-q")
    # One line per test with its outcome (`-q -v` would cancel out to the dots), for the proofs naming tests.
    pytest_each = (venv_tool("pytest"), "-p", "no:cacheprovider", "-v")
    deploy_env = (
        ("DEBUG", "false"),
        ("AGENTCHAT_HTTPS", "true"),
        ("ALLOWED_HOSTS", "agentchat.example.com"),
        ("SECRET_KEY", secrets.token_urlsafe(50)),
    )
    listed = [
        Gate("ruff-check", (venv_tool("ruff"), "check", ".")),
        Gate("ruff-format", (venv_tool("ruff"), "format", "--check", ".")),
        Gate("mypy", (venv_tool("mypy"), ".")),
        Gate(
            "bandit",
            (
                venv_tool("bandit"),
                *("-q", "-c", "pyproject.toml", "-f", "json", "--severity-level", "medium"),
                *("-r", *BANDIT_DIRS),
            ),
        ),
        Gate("migrations-check", (py, "manage.py", "makemigrations", "--check", "--dry-run")),
        Gate("schema-check", (py, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)),
        Gate("check-deploy", (py, "manage.py", "check", "--deploy", "--fail-level", "WARNING"), env=deploy_env),
        Gate("pytest", (*pytest, "-m", "not browser")),
        Gate("fault-suite", (*pytest, "-m", "fault or persistence")),
        Gate("fault-collect", (*pytest, "--collect-only", "-m", "fault")),
        Gate("no-fake-scan", (py, "scripts/no_fake_scan.py")),
        Gate("secret-scan", (py, "scripts/secret_scan.py")),
        Gate("secret-scan-database", (py, "scripts/secret_scan.py", "--database")),
        Gate("browser-check", (*pytest, "-m", "browser"), env=(("AGENTCHAT_EVIDENCE_DIR", str(evidence_dir)),)),
        Gate(
            "mcp-conformance",
            (*pytest, "tests/runtime/mcp/test_conformance.py"),
            env=(("AGENTCHAT_EVIDENCE_DIR", str(evidence_dir)),),
        ),
        Gate("provider-adapters", (*pytest_each, "tests/runtime/providers", "tests/runtime/test_providers.py")),
        Gate("live-local", ("bash", "scripts/live-local"), timeout=3600),
        Gate("worker-recovery", (*pytest_each, *RECOVERY_FILES)),
        Gate("manage-commands", (py, "manage.py", "help", "--commands"), timeout=300),
        Gate("bootstrap-capture", (py, "manage.py", "bootstrap_capture", "--out", str(evidence_dir / "bootstrap"))),
    ]
    return {gate.name: gate for gate in listed}


def run_gates(runner: GateRunner, buildprint: Path = ROOT / ".buildprint") -> dict[str, GateResult]:
    """Run every gate in order; bootstrap_capture only when the command exists (else a failed result)."""
    results: dict[str, GateResult] = {}
    for name, gate in gates(buildprint).items():
        if name == "bootstrap-capture":
            commands = results["manage-commands"].output.split()
            if "bootstrap_capture" not in commands:
                results[name] = GateResult(name, 1, "manage.py bootstrap_capture does not exist yet")
                continue
        print(f"evidence: running {name} …", flush=True)
        results[name] = runner(gate)
    return results


def status_of(*results: GateResult) -> str:
    return "pass" if all(result.ok for result in results) else "fail"


def failures(*results: GateResult) -> str:
    failed = [f"{r.name} failed (exit {r.returncode}): {r.tail(3)}" for r in results if not r.ok]
    return "; ".join(failed)


def new_evidence_files(buildprint: Path, since: float) -> list[str]:
    evidence = buildprint / "evidence"
    skip = {"evidence-ledger.jsonl", "browser-check.json", "chat-journey.json", "page-screens.json"}
    return sorted(
        str(path.relative_to(evidence))
        for path in evidence.rglob("*")
        if path.is_file() and path.name not in skip and "screens" not in path.parts and path.stat().st_mtime >= since
    )


def build_proofs(results: dict[str, GateResult], buildprint: Path, since: float) -> dict[str, Proof]:
    r = results
    proofs: dict[str, Proof] = {}

    tests = pytest_counts(r["pytest"].output)
    unit = [r["ruff-check"], r["ruff-format"], r["mypy"], r["migrations-check"], r["schema-check"], r["pytest"]]
    unit_status = status_of(*unit) if tests["passed"] > 0 else "fail"
    proofs["unit_or_integration_test"] = Proof(
        unit_status,
        {**tests, "seconds": r["pytest"].seconds, "lint": r["ruff-check"].ok, "format": r["ruff-format"].ok}
        | {"mypy": r["mypy"].ok, "migrations_in_sync": r["migrations-check"].ok, "schema_clean": r["schema-check"].ok},
        failures(*unit) or ("" if tests["passed"] else "pytest reported no passing test"),
    )

    browser = pytest_counts(r["browser-check"].output)
    summary = written_summary(buildprint, "browser-check.json", since)
    capture = r["bootstrap-capture"]
    conformance = pytest_counts(r["mcp-conformance"].output)
    runtime_figures: dict[str, Any] = {
        "browser_tests": browser,
        "bootstrap_capture": capture.ok,
        "mcp_conformance": conformance,
    }
    runtime_problems: list[str] = []
    if conformance["passed"] == 0:
        runtime_problems.append(f"the MCP conformance suite did not pass: {r['mcp-conformance'].tail(3)}")
    if summary is not None:
        runtime_figures |= {
            "pages": len(summary.get("pages", [])),
            "page_problems": len(summary.get("problems", [])),
            "screenshots": [page.get("screenshot") for page in summary.get("pages", [])],
            "chromium": summary.get("chromium", ""),
            "notes": summary.get("notes", []),
        }
    else:
        runtime_problems.append("the browser check wrote no summary in this run (skipped or crashed)")
    if browser["passed"] == 0:
        runtime_problems.append(f"browser check did not pass: {r['browser-check'].tail(3)}")
    if capture.ok:
        runtime_figures["captured_files"] = new_evidence_files(buildprint, since)
    runtime_problems += [
        failures(result) for result in (r["browser-check"], r["mcp-conformance"], capture) if not result.ok
    ]
    proofs["runtime_or_browser_trace_or_blocker"] = Proof(
        "pass" if not runtime_problems else "fail", runtime_figures, "; ".join(dict.fromkeys(runtime_problems))
    )

    fault = pytest_counts(r["fault-suite"].output)
    fault_tests = collected_count(r["fault-collect"].output)
    persistence_ok = r["fault-suite"].ok and fault["passed"] > 0 and fault_tests > 0
    proofs["persistence_roundtrip_or_blocker"] = Proof(
        "pass" if persistence_ok else "fail",
        {**fault, "fault_tests": fault_tests, "seconds": r["fault-suite"].seconds},
        ""
        if persistence_ok
        else (failures(r["fault-suite"]) or "no tests marked `fault` (crash/contention/bad input) passed"),
    )

    bandit = bandit_counts(r["bandit"].output)
    review = phase_dir(buildprint) / "returns" / "integration-runtime.md"
    has_review = review.is_file() and bool(SECURITY_HEADING_RE.search(review.read_text(encoding="utf-8")))
    security = [r["bandit"], r["check-deploy"], r["secret-scan"], r["secret-scan-database"]]
    security_detail = failures(*security)
    if not has_review:
        security_detail = "; ".join(
            filter(None, [security_detail, "returns/integration-runtime.md has no security section"])
        )
    proofs["security_boundary_review_or_blocker"] = Proof(
        "pass" if status_of(*security) == "pass" and has_review else "fail",
        {
            "bandit": bandit,
            "check_deploy": r["check-deploy"].ok,
            "secret_scan_findings": scan_findings(r["secret-scan"].output),
            "database_secret_findings": scan_findings(r["secret-scan-database"].output),
            "security_review": str(review.relative_to(buildprint.parent)) if has_review else None,
        },
        security_detail,
    )

    proofs["no_fake_scan_pass"] = Proof(
        status_of(r["no-fake-scan"]),
        {"findings": scan_findings(r["no-fake-scan"].output)},
        failures(r["no-fake-scan"]),
    )
    return proofs


def provider_proofs(results: dict[str, GateResult]) -> dict[str, Proof]:
    """Every adapter kind against local servers speaking its wire protocol, and the live proof's state."""
    adapters = results["provider-adapters"]
    counts = pytest_counts(adapters.output)
    passed_ids = [line for line in adapters.output.splitlines() if " PASSED" in line]
    kinds = [kind for kind, marks in ADAPTER_TEST_MARKS.items() if any(m in line for m in marks for line in passed_ids)]
    missing = [kind for kind in ADAPTER_KINDS if kind not in kinds]
    adapter_ok = adapters.ok and counts["passed"] > 0 and not missing
    problems = failures(adapters) or (f"no passing test names the kinds {missing}" if missing else "")
    local = results["live-local"]
    live_figures = {"credentials_present": False, "local_model_server_turns": pytest_counts(local.output)}
    detail = LIVE_PROVIDER_DETAIL + (
        "; make live-local ran real turns on an openai_compatible route"
        if local.ok
        else f"; make live-local failed: {local.tail(3)}"
    )
    return {
        "provider_adapter_config_test": Proof(
            "pass" if adapter_ok else "fail", {**counts, "kinds": kinds, "seconds": adapters.seconds}, problems
        ),
        "live_provider": Proof("blocker" if local.ok else "fail", live_figures, detail),
    }


def recovery_proof(results: dict[str, GateResult]) -> Proof:
    """Workers and streams recovering (kill -9, SIGTERM, cancel, disconnects), each scenario by its real test."""
    gate = results["worker-recovery"]
    passed = {line.split(" PASSED")[0].strip() for line in gate.output.splitlines() if " PASSED" in line}
    scenarios = {name: test in passed for name, test in RECOVERY_TESTS.items()}
    missing = [name for name, ok in scenarios.items() if not ok]
    ok = gate.ok and not missing
    problems = failures(gate) or (f"no passing test for the scenarios {missing}" if missing else "")
    figures = {**pytest_counts(gate.output), "scenarios": scenarios, "seconds": gate.seconds}
    return Proof("pass" if ok else "fail", figures, problems)


def written_summary(buildprint: Path, name: str, since: float) -> dict[str, Any] | None:
    """The JSON summary `<buildprint>/evidence/<name>` if a test wrote it in this run."""
    path = buildprint / "evidence" / name
    if not path.is_file() or path.stat().st_mtime < since:
        return None
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return summary


def chat_journey_proof(buildprint: Path, since: float) -> Proof:
    """The chat journey in Chromium (tests/web/test_chat_browser.py, run by the browser-check gate): the
    summary it wrote in this run, with its steps, screenshots and axe-core findings; and the screenshots of
    every page in each state, light and dark (tests/proof/test_screens.py), under `page_screens`."""
    summary = written_summary(buildprint, "chat-journey.json", since)
    if summary is None:
        return Proof("fail", {}, "the chat journey wrote no summary in this run (skipped or failed before its end)")
    serious = {page: found for page, found in summary.get("axe_serious", {}).items() if found}
    problems = [*(f"axe on {page}: {found}" for page, found in serious.items()), *summary.get("problems", [])]
    screens = written_summary(buildprint, "page-screens.json", since)
    if screens is None:
        problems.append("the page screenshots wrote no summary in this run (skipped or failed before their end)")
    else:
        summary["page_screens"] = screens
        problems += [f"page screenshots: {problem}" for problem in screens.get("problems", [])]
    detail = "; ".join(problems)
    return Proof("fail" if detail else "pass", summary, detail)


def append_row(buildprint: Path, row: dict[str, Any]) -> Path:
    ledger = buildprint / "evidence" / "evidence-ledger.jsonl"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=False, separators=(",", ":")) + "\n")
    return ledger


def print_table(results: dict[str, GateResult], proofs: dict[str, Proof]) -> None:
    print(f"\n{'gate':<22} {'result':<7} {'seconds':>8}")
    for name, result in results.items():
        print(f"{name:<22} {'ok' if result.ok else 'FAILED':<7} {result.seconds:>8.1f}")
    print(f"\n{'proof type':<38} status")
    for name, proof in proofs.items():
        print(f"{name:<38} {proof.status}" + (f"  ({proof.detail[:100]})" if proof.detail else ""))


def record(buildprint: Path, runner: GateRunner, *, now: Callable[[], datetime] | None = None) -> int:
    """Run the gates and append the ledger row; 2 if the phase record is incomplete."""
    missing = missing_files(buildprint)
    if missing:
        print(
            "evidence: refusing to append a ledger row: the phase record is incomplete. Write these files "
            "(each review's return is written by reviewing the code against its handoff):",
            file=sys.stderr,
        )
        for path in missing:
            print(f"  missing: {path}", file=sys.stderr)
        return 2
    started_wall = time.time()
    recorded_at = (now or (lambda: datetime.now(UTC)))()
    commit, dirty = git_state(runner)
    results = run_gates(runner, buildprint)
    proofs = build_proofs(results, buildprint, started_wall)
    ledger = buildprint / "evidence" / "evidence-ledger.jsonl"
    previous = len(ledger.read_text(encoding="utf-8").splitlines()) if ledger.is_file() else 0
    proofs["evidence_ledger_entry"] = Proof(
        "pass",
        {"row": previous + 1, "phase_record_files": len(required_files(buildprint))},
        f"appended to {ledger.relative_to(buildprint.parent)} by scripts/evidence.py",
    )
    proofs |= provider_proofs(results)
    proofs["worker_retry_cancel_recovery"] = recovery_proof(results)
    proofs["repeatable_browser_e2e"] = chat_journey_proof(buildprint, started_wall)
    row = {
        "phase_id": PHASE_ID,
        "proof_id": PROOF_ID,
        "recorded_at": recorded_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "commit": commit,
        "dirty": dirty,
        "database_vendor": database_vendor(),
        "proofs": {name: proof.as_dict() for name, proof in proofs.items()},
        "gates": {
            name: {"ok": res.ok, "exit": res.returncode, "seconds": res.seconds} for name, res in results.items()
        },
    }
    append_row(buildprint, row)
    print_table(results, proofs)
    print(f"\nevidence: appended row {previous + 1} to {ledger}")
    required_ok = all(proofs[name].status == "pass" for name in PROOF_TYPES)
    return 0 if required_ok else 1


def main(argv: Sequence[str] | None = None, runner: GateRunner = run_process) -> int:
    parser = argparse.ArgumentParser(description="Run the phase gates and append a row to the evidence ledger.")
    parser.add_argument("--buildprint", type=Path, default=ROOT / ".buildprint", help="the phase record directory")
    args = parser.parse_args(argv)
    return record(args.buildprint.resolve(), runner)


if __name__ == "__main__":
    sys.exit(main())
