"""`python -m bench`: run every workload and report (see bench/README.md).

The parent process runs no workload itself. On SQLite it starts one child per `synchronous`
level (NORMAL, then FULL), because the level is a setting read once at start-up; each child gets
its own DATABASE_URL under bench/.work/ before Django is set up. With DATABASE_URL pointing at
PostgreSQL it starts one child against that database. It then merges the children's rows, prints
the table and writes bench/results.json and bench/RESULTS.md.

    python -m bench                  # the full run (what `make bench` does)
    python -m bench --quick          # tiny sizes, results only under bench/.work/ (development)
    python -m bench --only 1,3       # some workloads
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LAST_WORKLOAD = 17  # the highest key of bench.workloads.WORKLOADS (tests/bench checks they agree)

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
LEVELS = ("NORMAL", "FULL")
POSTGRES_LEVEL = "-"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Agent Chat benchmarks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; results stay under bench/.work/")
    parser.add_argument("--only", default="", help="comma-separated workload numbers (default: all)")
    parser.add_argument("--no-profile", action="store_true", help="skip profiling failed targets")
    parser.add_argument("--level", help=argparse.SUPPRESS)  # child mode: run at this level
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def workload_numbers(only: str) -> list[int]:
    if not only:
        return list(range(1, LAST_WORKLOAD + 1))
    numbers = sorted({int(part) for part in only.split(",") if part.strip()})
    bad = [number for number in numbers if not 1 <= number <= LAST_WORKLOAD]
    if bad:
        raise SystemExit(f"--only: no workload {bad[0]}; use numbers 1 to {LAST_WORKLOAD}")
    return numbers


def database_vendor(url: str) -> str:
    return "postgresql" if url.split("://", 1)[0] in ("postgres", "postgresql", "pgsql") else "sqlite"


# --- child ----------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentchat_site.settings")
    import django

    django.setup()
    from django.db import connection

    from bench.db import Databases
    from bench.workloads import QUICK, Ctx, Sizes, run_workload

    level = args.level
    sizes = QUICK if args.quick else Sizes()
    work = WORK / ("postgresql" if level == POSTGRES_LEVEL else level.lower())
    dbs = Databases(work=work, fixtures=WORK / "fixtures")
    dbs.prepare()
    ctx = Ctx(level=level, sizes=sizes, dbs=dbs, work=work, profile=not args.no_profile)
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for number in workload_numbers(args.only):
        start = time.perf_counter()
        result = run_workload(number, ctx)
        timings[str(number)] = round(time.perf_counter() - start, 1)
        print(f"  [{level}] workload {number}: {timings[str(number)]} s", file=sys.stderr, flush=True)
        rows += [row.to_json() for row in result]
    server = ""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = str(cursor.fetchone()[0])
    Path(args.out).write_text(json.dumps({"level": level, "rows": rows, "seconds": timings, "server": server}))


# --- parent ---------------------------------------------------------------------------------


def run_child(level: str, args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    work = WORK / ("postgresql" if level == POSTGRES_LEVEL else level.lower())
    work.mkdir(parents=True, exist_ok=True)
    out = work / "child.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "agentchat_site.settings"
    env["PYTHONPATH"] = str(ROOT)
    env["DEBUG"] = "false"
    env["DATABASE_URL"] = database_url if level == POSTGRES_LEVEL else f"sqlite:///{work / 'template.sqlite3'}"
    if level != POSTGRES_LEVEL:
        env["SQLITE_SYNCHRONOUS"] = level
    command = [sys.executable, "-m", "bench", f"--level={level}", f"--out={out}"]
    if args.quick:
        command.append("--quick")
    if args.only:
        command += ["--only", args.only]
    if args.no_profile:
        command.append("--no-profile")
    print(f"[{level}] starting", file=sys.stderr, flush=True)
    completed = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if completed.returncode != 0 or not out.exists():
        raise SystemExit(f"the {level} run failed (exit {completed.returncode}); see the output above")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def parent(args: argparse.Namespace) -> None:
    from bench.harness import Row, format_table
    from bench.report import machine_info, results_update, results_write

    workload_numbers(args.only)  # validate before any work
    database_url = os.environ.get("DATABASE_URL", "")
    vendor = database_vendor(database_url)
    shutil.rmtree(WORK / "fixtures", ignore_errors=True)  # fixtures are rebuilt each run
    WORK.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    levels = LEVELS if vendor == "sqlite" else (POSTGRES_LEVEL,)
    children = [run_child(level, args, database_url) for level in levels]
    rows = [Row.from_json(row) for data in children for row in data["rows"]]
    order = {key: index for index, key in enumerate(dict.fromkeys(row.key for row in rows))}
    rows.sort(key=lambda row: (row.workload, order[row.key], levels.index(row.level)))
    seconds = round(time.perf_counter() - start, 1)
    run = {
        **machine_info(vendor, server=children[0].get("server", "")),
        "seconds": seconds,
        "quick": args.quick,
        "only": args.only,
        "workload_seconds": {data["level"]: data["seconds"] for data in children},
        "rows": [row.to_json() for row in rows],
    }
    print()
    print(format_table(rows))
    print(f"\n{vendor}: {len(rows)} rows in {seconds} s")
    if args.quick or args.only:
        target = WORK / "results-partial.json"
        target.write_text(json.dumps(run, indent=2))
        print(f"partial run: written to {target.relative_to(ROOT)} (bench/results.json and RESULTS.md unchanged)")
        return
    results = results_update(BENCH_DIR / "results.json", vendor, run)
    results_write(BENCH_DIR / "results.json", BENCH_DIR / "RESULTS.md", results)
    failed = [row for row in rows if row.passed is False]
    print("written: bench/results.json, bench/RESULTS.md" + (f"; {len(failed)} target(s) not met" if failed else ""))


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.level:
        if args.level not in (*LEVELS, POSTGRES_LEVEL) or not args.out:
            raise SystemExit("--level is for the harness's own child processes")
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main(sys.argv[1:])
