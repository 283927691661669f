"""Secret scan: fail when a tracked file, or the database, holds something that looks like a key.

    python scripts/secret_scan.py               # every git-tracked file
    python scripts/secret_scan.py --database    # a fresh SQLite database after migrate + load_config
    python scripts/secret_scan.py --root DIR FILE…  # given files (used by the tests)

Key-shaped values: the known prefixes (`sk-`, `sk-ant-`, `sk-proj-`, `AIza`, `ghp_`/`gho_`/
`github_pat_`, `xoxb-`/`xoxa-`/`xoxp-`, `AKIA` + 16), `Bearer <long token>`, PEM private-key blocks,
and long high-entropy base64/hex strings assigned to a name that says key/secret/token/password
(or, for very random base64, to any name).

Allow-list, for tracked files only: a match whose value contains one of the markers RECOGNISABLE,
RECOGNIZABLE or EXAMPLE is a deliberately fake test fixture (the project's tests use values such as
`sk-proj-RECOGNISABLE-…` to prove that secrets never leak; AWS documents `AKIA…EXAMPLE`). Nothing
else is allowed, and nothing at all in `--database` mode: the database must hold no key-shaped value.

`--database` sets every provider environment variable (the fixed list below, plus each
`api_key_env` named in the example config) to a recognisable key-shaped value, runs `migrate`,
`load_config` (when the project has that command) and `ensure_operator` on a temporary SQLite
file, dumps every table with sqlite3's `iterdump`, and fails if an environment value, its random
part, the operator password, or anything key-shaped appears in the dump.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from scan_report import Finding, findings_report, scan_parser

ALLOW_MARKERS = ("RECOGNISABLE", "RECOGNIZABLE", "EXAMPLE")
MAX_FILE_BYTES = 5_000_000

# (name, pattern). Group 0 is the value reported (never printed in full).
KEY_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("Anthropic key (sk-ant-)", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}")),
    ("OpenAI project key (sk-proj-)", re.compile(r"\bsk-proj-[A-Za-z0-9_\-]{16,}")),
    ("API key (sk-)", re.compile(r"\bsk-(?!ant-|proj-)[A-Za-z0-9_\-]{20,}")),
    ("Google API key (AIza)", re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}")),
    ("GitHub token (ghp_/gho_)", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("GitHub token (github_pat_)", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    ("Slack token (xox?-)", re.compile(r"\bxox[bap]-[A-Za-z0-9\-]{10,}")),
    ("AWS access key id (AKIA)", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("Bearer token", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/\-]{20,}=*")),
    ("PEM private key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")),
]
SENSITIVE_NAME = r"[A-Za-z0-9_\-.]*(?:key|secret|token|passw(?:or)?d|pwd|credential|auth)[A-Za-z0-9_\-.]*"
NAMED_ASSIGNMENT = re.compile(
    rf"""(?ix)(?P<name>{SENSITIVE_NAME})["']?\s*(?::=|=|:)\s*(?:[rbuf]?["'])?(?P<value>[A-Za-z0-9+/_\-=.]{{24,}})"""
)
ANY_ASSIGNMENT = re.compile(r"""(?x)[=:]\s*[rbuf]?["'](?P<value>[A-Za-z0-9+/_\-=]{40,})["']""")
HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
# A Subresource Integrity value (npm's package-lock `integrity`): a content hash in base64, not a key.
SRI_RE = re.compile(r"sha(?:256|384|512)-[A-Za-z0-9+/]+={0,2}")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def redact(value: str) -> str:
    """Enough of a value to find it again, never the whole secret."""
    return f"{value[:8]}…({len(value)} chars)" if len(value) > 10 else "…"


def is_allowed(value: str) -> bool:
    return any(marker in value for marker in ALLOW_MARKERS)


def looks_random(value: str) -> bool:
    """A key-like token: long, mixed letters and digits, and high entropy for its alphabet."""
    if not (re.search(r"[A-Za-z]", value) and re.search(r"\d", value)):
        return False
    if HEX_RE.match(value):
        return len(value) >= 32 and entropy(value) >= 3.0
    return entropy(value) >= 4.0


def very_random_base64(value: str) -> bool:
    if HEX_RE.match(value) or SRI_RE.fullmatch(value):
        return False  # content hashes (hex, SRI) and commit ids: only keys named as such are reported
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    return classes == 3 and entropy(value) >= 4.8


def scan_text(text: str, where: str, *, allow_fixtures: bool, entropy_rules: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in KEY_PATTERNS:
            for match in pattern.finditer(line):
                token = match.group(0)
                # The whole whitespace/quote-delimited token decides the allow-list.
                end = match.end()
                while end < len(line) and not line[end].isspace() and line[end] not in "\"'`,;)]}":
                    end += 1
                if allow_fixtures and is_allowed(line[match.start() : end]):
                    continue
                findings.append(Finding(where, number, kind, redact(token)))
        if not entropy_rules:
            continue
        for match in NAMED_ASSIGNMENT.finditer(line):
            value = match.group("value").rstrip(".")
            if looks_random(value) and not (allow_fixtures and is_allowed(value)):
                findings.append(
                    Finding(where, number, f"high-entropy value assigned to {match.group('name')}", redact(value))
                )
        for match in ANY_ASSIGNMENT.finditer(line):
            value = match.group("value")
            if very_random_base64(value) and not (allow_fixtures and is_allowed(value)):
                findings.append(Finding(where, number, "high-entropy base64 string", redact(value)))
    # One finding per (line, value): the named and the generic rule may both see it.
    unique: dict[tuple[str, int, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.where, finding.line, finding.preview), finding)
    return sorted(unique.values())


def tracked_files(root: Path) -> list[str]:
    result = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=60)
    return [name for name in result.stdout.decode().split("\0") if name]


def read_text(path: Path) -> str | None:
    """The file as text, or None for binaries, symlinks to nowhere and huge files."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def scan_files(root: Path, names: Iterable[str]) -> tuple[int, list[Finding]]:
    scanned = 0
    findings: list[Finding] = []
    for name in names:
        text = read_text(root / name)
        if text is None:
            continue
        scanned += 1
        findings.extend(scan_text(text, name, allow_fixtures=True))
    return scanned, findings


# --- --database ------------------------------------------------------------------------------------
PROVIDER_ENV_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENROUTER_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "TOGETHER_API_KEY",
)
ENV_NAME_RE = re.compile(r"""api_key_env\s*[=:]\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")


def provider_env_names(root: Path) -> list[str]:
    """The fixed provider variables plus every `api_key_env` named in the config files."""
    names = set(PROVIDER_ENV_VARS)
    config_dir = root / "config"
    if config_dir.is_dir():
        for path in sorted(config_dir.rglob("*")):
            text = read_text(path)
            if text is not None:
                names.update(ENV_NAME_RE.findall(text))
    return sorted(names)


def recognisable_value(name: str, nonce: str) -> str:
    """A key-shaped value whose random part can be searched for in the dump."""
    prefix = {"ANTHROPIC_API_KEY": "sk-ant-", "GEMINI_API_KEY": "AIza", "GOOGLE_API_KEY": "AIza"}.get(name, "sk-proj-")
    return f"{prefix}SECRETSCAN-{name.replace('_', '-')}-{nonce}"


def manage_commands(env: dict[str, str], root: Path) -> set[str]:
    result = run_manage(["help", "--commands"], env, root, timeout=120)
    result.check_returncode()
    return set(result.stdout.split())


def run_manage(
    args: Sequence[str], env: dict[str, str], root: Path, *, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def scan_database(root: Path) -> int:
    nonce = secrets.token_hex(12)
    values = {name: recognisable_value(name, f"{name[:3]}{nonce}") for name in provider_env_names(root)}
    password = f"operator-password-{nonce}"
    with tempfile.TemporaryDirectory(prefix="secret-scan-") as tmp:
        db_file = Path(tmp) / "scan.sqlite3"
        env = {
            **os.environ,
            **values,
            "DATABASE_URL": f"sqlite:///{db_file}",
            "AGENTCHAT_OPERATOR_PASSWORD": password,
            "PYTHONPATH": str(root),
        }
        commands = manage_commands(env, root)
        steps: list[list[str]] = [["migrate", "--noinput"]]
        notes: list[str] = []
        if "load_config" in commands:
            steps.append(["load_config"])
        else:
            notes.append("load_config does not exist yet: scanned the migrated database without config")
        if "ensure_operator" in commands:
            steps.append(["ensure_operator"])
        for step in steps:
            result = run_manage(step, env, root)
            if result.returncode != 0:
                print(f"secret scan --database: manage.py {' '.join(step)} failed:\n{result.stderr}", file=sys.stderr)
                return 1
            for value in [*values.values(), password]:
                if value in result.stdout or value in result.stderr:
                    print(f"secret scan --database: manage.py {step[0]} printed a secret value", file=sys.stderr)
                    return 1
        connection = sqlite3.connect(db_file)
        try:
            dump = "\n".join(connection.iterdump())
            tables = [
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            ]
        finally:
            connection.close()
    rows = sum(1 for line in dump.splitlines() if line.startswith("INSERT INTO "))
    findings = scan_text(dump, "database", allow_fixtures=False, entropy_rules=False)
    for name, value in values.items():
        for needle in (value, value.rsplit("-", 1)[-1]):
            for number, line in enumerate(dump.splitlines(), start=1):
                if needle in line:
                    findings.append(Finding("database", number, f"value of {name}", redact(needle)))
    for number, line in enumerate(dump.splitlines(), start=1):
        if password in line:
            findings.append(Finding("database", number, "operator password in clear", "…"))
    findings = sorted(set(findings))
    for note in notes:
        print(f"note: {note}")
    for finding in findings:
        print(finding)
    print(
        f"secret scan --database: {len(tables)} tables, {rows} rows, {len(values)} provider env values set, "
        f"load_config {'ran' if 'load_config' in commands else 'missing'}, {len(findings)} findings"
    )
    return 1 if findings else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = scan_parser(
        "Fail when tracked files or the database hold a key-shaped value.", "project root (default: this checkout)"
    )
    parser.add_argument("--database", action="store_true", help="scan a fresh database after migrate + load_config")
    parser.add_argument("files", nargs="*", help="files relative to the root (default: every git-tracked file)")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if args.database:
        return scan_database(root)
    names = args.files or tracked_files(root)
    return findings_report("secret scan", *scan_files(root, names))


if __name__ == "__main__":
    sys.exit(main())
