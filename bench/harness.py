"""The harness's plain parts: result rows, statistics, targets and the printed table.

Nothing here touches Django or a database, so the tests can check it directly. A workload
produces `Row`s; every figure that carries a target is a ratio of two things measured in the
same run (interleaved), and every figure is the median of several repetitions.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Detail = dict[str, float | int | str | None]


@dataclass(frozen=True)
class Target:
    """A bound on a figure: `>= 0.5` or `<= 1.2`."""

    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"target operator {self.op!r}: use >= or <=")

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.op == ">=" else figure <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass
class Row:
    """One line of the results table."""

    workload: int
    key: str
    title: str
    level: str
    vendor: str
    figure: float | None = None
    unit: str = "x"
    target: str | None = None
    passed: bool | None = None
    status: str = "ok"
    reps: int = 0
    detail: Detail = field(default_factory=dict)
    profile: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        return cls(**data)

    @property
    def verdict(self) -> str:
        """PASS / FAIL for a figure with a target; "-" without one; the reason when not measured."""
        if self.status != "ok":
            return self.status
        if self.passed is None:
            return "-"
        return "PASS" if self.passed else "FAIL"


def row_with_target(row: Row, target: Target | None) -> Row:
    """`row` with its target recorded and judged (no target on PostgreSQL: figures only)."""
    if target is None or row.figure is None or row.status != "ok":
        return row
    row.target = str(target)
    row.passed = target.met(row.figure)
    return row


def unavailable(workload: int, key: str, title: str, level: str, vendor: str, missing: str) -> Row:
    """A row for a workload whose code is missing: says what is missing, never a number."""
    return Row(workload, key, title, level, vendor, status=f"not available: {missing}")


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; a zero denominator is an error in the measurement, not infinity."""
    if denominator <= 0:
        raise ValueError(f"ratio with a non-positive denominator ({denominator})")
    return numerator / denominator


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-repetition ratios: each pair was measured back to back, so drift cancels."""
    if len(numerators) != len(denominators):
        raise ValueError("paired_ratio needs as many numerators as denominators")
    return median([ratio(a, b) for a, b in zip(numerators, denominators, strict=True)])


def timed(fn: Callable[[], object], count: int) -> float:
    """Seconds per call of `fn`, over `count` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def rotated(items: Sequence[str], rep: int) -> list[str]:
    """`items` rotated by `rep`, so no system is always measured first (or last) in a repetition."""
    shift = rep % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


def format_figure(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("ops/s", "bytes"):
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def format_detail(detail: Detail) -> str:
    parts: list[str] = []
    for key, value in detail.items():
        if isinstance(value, float):
            text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        else:
            text = "n/a" if value is None else str(value)
        parts.append(f"{key}={text}")
    return ", ".join(parts)


TABLE_COLUMNS = ("#", "measure", "level", "figure", "target", "result", "reps", "medians")


def table_cells(row: Row) -> list[str]:
    return [
        str(row.workload),
        row.title,
        row.level,
        format_figure(row.figure, row.unit) if row.status == "ok" else "n/a",
        row.target or "-",
        row.verdict,
        str(row.reps) if row.reps else "-",
        format_detail(row.detail),
    ]


def format_table(rows: Iterable[Row], *, markdown: bool = False) -> str:
    """The rows as an aligned text table (or a Markdown table)."""
    body = [table_cells(row) for row in rows]
    if markdown:

        def escape(cell: str) -> str:
            return cell.replace("|", "\\|")

        lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
        lines += ["| " + " | ".join(escape(cell) for cell in cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [len(title) for title in TABLE_COLUMNS]
    for cells in body:
        widths = [max(width, len(cell)) for width, cell in zip(widths, cells, strict=True)]
    header = "  ".join(title.ljust(width) for title, width in zip(TABLE_COLUMNS, widths, strict=True))
    lines = [header, "  ".join("-" * width for width in widths)]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip() for cells in body
    ]
    return "\n".join(lines)
