"""The benchmark harness: its statistics, its table, and one tiny workload producing a real row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from bench.db import Databases, Meta, seed
from bench.harness import (
    Row,
    Target,
    format_figure,
    format_table,
    median,
    paired_ratio,
    ratio,
    rotated,
    row_with_target,
    unavailable,
)
from bench.workloads import QUICK, Ctx, w8_storage


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="median of no values"):
        median([])


def test_ratio_refuses_a_zero_denominator() -> None:
    assert ratio(3.0, 2.0) == 1.5
    with pytest.raises(ValueError, match="non-positive denominator"):
        ratio(1.0, 0.0)


def test_paired_ratio_is_the_median_of_per_repetition_ratios() -> None:
    # Ratios 2.0, 3.0, 10.0: the median (3.0), not median(a) / median(b) (= 12 / 4 = 3.0 here by chance).
    assert paired_ratio([2.0, 12.0, 30.0], [1.0, 4.0, 3.0]) == 3.0
    assert paired_ratio([10.0, 10.0, 10.0], [1.0, 2.0, 5.0]) == 5.0
    with pytest.raises(ValueError, match="as many"):
        paired_ratio([1.0], [1.0, 2.0])


def test_rotated_changes_who_goes_first_each_repetition() -> None:
    assert rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert rotated(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert rotated(["a", "b", "c"], 5) == ["c", "a", "b"]


def test_targets_judge_both_directions() -> None:
    assert Target(">=", 0.5).met(0.5)
    assert not Target(">=", 0.5).met(0.49)
    assert Target("<=", 1.2).met(1.2)
    assert not Target("<=", 1.2).met(1.21)
    assert str(Target("<=", 1.2)) == "<= 1.2"
    with pytest.raises(ValueError, match="target operator"):
        Target("<", 1.0)


def test_row_with_target_records_the_verdict() -> None:
    passed = row_with_target(Row(2, "2.ours", "checkpoint", "NORMAL", "sqlite", figure=1.1), Target("<=", 1.2))
    failed = row_with_target(Row(2, "2.ours", "checkpoint", "FULL", "sqlite", figure=1.3), Target("<=", 1.2))
    figures_only = row_with_target(Row(2, "2.ours", "checkpoint", "-", "postgresql", figure=1.3), None)
    assert (passed.target, passed.passed, passed.verdict) == ("<= 1.2", True, "PASS")
    assert (failed.passed, failed.verdict) == (False, "FAIL")
    assert (figures_only.target, figures_only.passed, figures_only.verdict) == (None, None, "-")


def test_unavailable_row_says_what_is_missing_and_has_no_figure() -> None:
    row = unavailable(4, "4.ours", "bootstrap", "NORMAL", "sqlite", "GET /api/bootstrap/")
    assert row.figure is None
    assert row.verdict == "not available: GET /api/bootstrap/"
    assert row.passed is None


def test_format_figure_by_unit() -> None:
    assert format_figure(0.4567, "x") == "0.46x"
    assert format_figure(1234.4, "ops/s") == "1,234 ops/s"
    assert format_figure(None, "x") == "n/a"


def test_format_table_aligns_columns_and_escapes_markdown() -> None:
    rows = [
        Row(
            1,
            "1.langgraph",
            "append vs LangGraph",
            "NORMAL",
            "sqlite",
            figure=0.6,
            target=">= 0.5",
            passed=True,
            detail={"ours ops/s": 1500.0, "langgraph ops/s": 2500.0},
        ),
        Row(6, "6.ours", "memory | search", "FULL", "sqlite", status="not available: memory_search"),
    ]
    text = format_table(rows).splitlines()
    assert text[0].split() == ["#", "measure", "level", "figure", "target", "result", "reps", "medians"]
    assert text[2].startswith("1  append vs LangGraph")
    assert "0.60x" in text[2]
    assert "PASS" in text[2]
    assert "ours ops/s=1,500, langgraph ops/s=2,500" in text[2]
    assert text[3].split("  ")[0] == "6"
    assert "not available: memory_search" in text[3]
    assert text[3].index("FULL") == text[0].index("level")
    markdown = format_table(rows, markdown=True).splitlines()
    assert markdown[0] == "| # | measure | level | figure | target | result | reps | medians |"
    assert "| memory \\| search |" in markdown[3]


def test_row_round_trips_through_json() -> None:
    row = Row(3, "3.ours", "restore", "NORMAL", "sqlite", figure=1.1, reps=7, detail={"small ms": 0.5})
    assert Row.from_json(row.to_json()) == row


class InPlaceDatabases(Databases):
    """The test's own database instead of a fresh file per workload."""

    def fresh(self, name: str) -> None:
        """Empty the test database and put the seed back, as the PostgreSQL path does."""
        call_command("flush", interactive=False, verbosity=0)
        seed()

    def fixture(self, name: str, build: Callable[[], Meta], *, shared: bool = False) -> Meta:
        return build()


@pytest.mark.django_db(transaction=True)
def test_tiny_storage_workload_produces_a_judged_row(tmp_path: Path) -> None:
    seed()
    dbs = InPlaceDatabases(work=tmp_path, fixtures=tmp_path / "fixtures")
    level = "NORMAL" if connection.vendor == "sqlite" else "-"
    ctx = Ctx(level=level, sizes=QUICK, dbs=dbs, work=tmp_path, profile=False)

    (row,) = w8_storage(ctx)

    assert (row.workload, row.key, row.level, row.vendor, row.status) == (8, "8.ours", level, connection.vendor, "ok")
    assert row.title == "DB size after 200 / after 20 msgs"
    assert row.figure is not None
    assert row.figure >= 1.0
    detail: dict[str, Any] = row.detail
    assert set(detail) == {"small bytes", "large bytes", "bytes/msg"}
    assert detail["large bytes"] >= detail["small bytes"] > 0
    if connection.vendor == "sqlite":
        assert row.target == "<= 11"
        assert isinstance(row.passed, bool)
    else:
        assert row.target is None
        assert row.passed is None
    assert row.verdict in ("PASS", "FAIL", "-")


def test_writing_results_keeps_the_notes_written_by_hand(tmp_path: Path) -> None:
    from bench.report import KEPT_HEADING, results_write

    markdown = tmp_path / "RESULTS.md"
    notes = f"{KEPT_HEADING}\n\n### 2026-01-01: a figure measured outside a full run\n"
    markdown.write_text("# Benchmark results\n\nold generated text\n\n" + notes)
    results_write(tmp_path / "results.json", markdown, {})
    text = markdown.read_text()
    assert "old generated text" not in text
    assert text.endswith(notes)
    results_write(tmp_path / "results.json", markdown, {})  # and again: kept once, not doubled
    assert markdown.read_text() == text


def test_every_workload_can_be_chosen_by_number() -> None:
    from bench.__main__ import LAST_WORKLOAD, workload_numbers
    from bench.workloads import WORKLOADS

    assert max(WORKLOADS) == LAST_WORKLOAD
    assert workload_numbers("") == sorted(WORKLOADS)
