"""What the project's scans share: a finding, the command line's `--root`, and the closing report.

`no_fake_scan.py` and `secret_scan.py` import it (they run as `python scripts/NAME.py`, so this
folder is on the import path).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one line: `where:line: problem`, then `: preview` when the scan quotes the value."""

    where: str
    line: int
    problem: str
    preview: str = ""

    def __str__(self) -> str:
        text = f"{self.where}:{self.line}: {self.problem}"
        return f"{text}: {self.preview}" if self.preview else text


def scan_parser(description: str | None, root_help: str) -> argparse.ArgumentParser:
    """A scan's command line with its `--root` (the tree to scan, this checkout by default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, default=ROOT, help=root_help)
    return parser


def findings_report(scan_name: str, scanned: int, findings: Iterable[Finding]) -> int:
    """Prints each finding and the count line; the exit status is 1 when anything was found."""
    found = list(findings)
    for finding in found:
        print(finding)
    print(f"{scan_name}: {scanned} files scanned, {len(found)} findings")
    return 1 if found else 0
