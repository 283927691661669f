"""bench/results.json and bench/RESULTS.md: the latest run and the one before it, per database.

results.json holds, for each vendor, `latest` and `previous` (the run `latest` replaced), so the
"met in two consecutive runs" rule can be read straight from RESULTS.md, which is rendered from
it on every full run.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import Row, format_detail, format_table

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "Django",
    "djangorestframework",
    "psycopg",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint",
    "openai-agents",
)


def _meminfo_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_RESULT_FILES = (":(exclude)bench/results.json", ":(exclude)bench/RESULTS.md")


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # The results this harness writes do not count as a change to the code measured.
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_RESULT_FILES],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' (uncommitted changes)' if dirty else ''}"


def machine_info(vendor: str, *, server: str = "") -> dict[str, Any]:
    versions: dict[str, str] = {"Python": platform.python_version(), "SQLite": sqlite3.sqlite_version}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    if server:
        versions["PostgreSQL server"] = server
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "vendor": vendor,
        "commit": _git_commit(),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gib": _meminfo_gib(),
            "cpu": _cpu_model(),
            "os": f"{platform.system()} {platform.release()}",
            # The machine is shared: the load during the run says how noisy the absolute figures are.
            "load_average": [round(value, 1) for value in os.getloadavg()],
            "python_executable": sys.executable.replace(str(ROOT) + "/", ""),
        },
        "versions": versions,
    }


def results_update(path: Path, vendor: str, run: dict[str, Any]) -> dict[str, Any]:
    """The stored results with `run` as the latest for `vendor` (the old latest becomes previous)."""
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    entry = results.get(vendor, {})
    results[vendor] = {"latest": run, "previous": entry.get("latest")}
    return results


def _run_section(title: str, run: dict[str, Any]) -> list[str]:
    machine = run["machine"]
    load = machine.get("load_average")
    load_text = f"; load average at the end {load[0]} / {load[1]} / {load[2]} (1/5/15 min)" if load else ""
    versions = ", ".join(f"{name} {version}" for name, version in run["versions"].items())
    rows = [Row.from_json(row) for row in run["rows"]]
    return [
        f"### {title}: {run['date']}",
        "",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB memory, "
        f"{machine['os']}{load_text}",
        f"- Versions: {versions}",
        f"- Commit: {run['commit']}; whole run {run['seconds']} s",
        "",
        format_table(rows, markdown=True),
        "",
    ]


def _both_runs(latest: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    before = {(row["key"], row["level"]): Row.from_json(row) for row in (previous or {}).get("rows", [])}
    lines = [
        "### Targets over the two latest runs",
        "",
        "| # | measure | level | target | latest | previous | met in both |",
        "|---|---|---|---|---|---|---|",
    ]
    for data in latest["rows"]:
        row = Row.from_json(data)
        if row.target is None and row.status == "ok":
            continue
        old = before.get((row.key, row.level))
        old_verdict = old.verdict if old is not None else "no previous run"
        met = row.passed and old is not None and old.passed
        both = "n/a" if row.status != "ok" else ("yes" if met else "no")
        lines.append(
            f"| {row.workload} | {row.title} | {row.level} | {row.target or '-'} | {row.verdict} | "
            f"{old_verdict} | {both} |"
        )
    return [*lines, ""]


def _profiles(run: dict[str, Any]) -> list[str]:
    rows = [Row.from_json(row) for row in run["rows"] if row.get("profile")]
    if not rows:
        return []
    lines = ["### Profiles of the targets not met (latest run)", ""]
    seen: set[tuple[int, str]] = set()
    for row in rows:
        if (row.workload, row.level) in seen:
            # The other rows of a workload time the same operation of ours; one profile says it.
            lines += [f"#### {row.workload}. {row.title} [{row.level}]: the same operation as profiled above", ""]
            continue
        seen.add((row.workload, row.level))
        lines += [
            f"#### {row.workload}. {row.title} [{row.level}]: {format_detail(row.detail)}",
            "",
            "```",
            row.profile,
            "```",
            "",
        ]
    return lines


HEADER = """# Benchmark results

Written by `make bench` (`python -m bench`) from `bench/results.json`; do not edit by hand
(except below "Notes kept by hand", which a run keeps as it is).
`bench/README.md` says what each workload measures and how the comparison is kept fair.
Every figure with a target is a ratio of two things measured in the same run, interleaved;
each figure is the median of the repetitions (`reps`). The `medians` column gives the
absolute figures behind each ratio (ms per operation, operations per second, bytes).
"""


def results_markdown(results: dict[str, Any]) -> str:
    lines = [HEADER]
    for vendor, heading in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL (figures only, no targets)")):
        entry = results.get(vendor)
        if not entry or not entry.get("latest"):
            continue
        lines += [f"## {heading}", ""]
        lines += _run_section("Latest run", entry["latest"])
        if entry.get("previous"):
            lines += _run_section("Previous run", entry["previous"])
        if vendor == "sqlite":
            lines += _both_runs(entry["latest"], entry.get("previous"))
        lines += _profiles(entry["latest"])
    return "\n".join(lines).rstrip() + "\n"


# Everything from this heading on is written by hand (dated measurements outside a full run) and
# kept as it is when the file is written again.
KEPT_HEADING = "## Notes kept by hand"


def results_write(json_path: Path, markdown_path: Path, results: dict[str, Any]) -> None:
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    previous = markdown_path.read_text() if markdown_path.exists() else ""
    kept = previous[previous.index(KEPT_HEADING) :] if KEPT_HEADING in previous else ""
    markdown_path.write_text(results_markdown(results) + ("\n" + kept if kept else ""))
