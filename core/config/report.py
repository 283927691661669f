"""Text the configuration commands print: problems, summaries and readiness, one line each."""

from __future__ import annotations

from pathlib import Path

from core.config.contracts import ConfigDocument, Kind, Problem, ReadinessReport


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def document_summary(document: ConfigDocument) -> str:
    """`2 providers, 3 routes, …` for a document."""
    return ", ".join(plural(len(document.records(kind)), kind.label) for kind in Kind)


def problems_summary(path: Path, problems: tuple[Problem, ...]) -> str:
    return f"{path}: {plural(len(problems), 'problem')} found; fix them and run the command again"


def readiness_lines(report: ReadinessReport) -> list[str]:
    """One line per record that is not ready, with its reasons."""
    return [
        f"{item.status}: {item.kind.label} {item.name!r}: {'; '.join(item.reasons)}"
        for item in report.all()
        if item.status != "ready"
    ]
