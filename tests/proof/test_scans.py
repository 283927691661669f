"""The no-fake scan and the secret scan find each kind of problem, and pass clean code.

The scans run as the CI runs them (`python scripts/<scan>.py`, exit code and `path:line: problem`
lines) against small trees written into a temporary directory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.proof.scripts import ROOT, load_script


def write(root: Path, rel: str, source: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def findings(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The finding lines, without the summary line."""
    return [line for line in result.stdout.splitlines() if not line.startswith(("no-fake scan:", "secret scan"))]


# --- no-fake scan ----------------------------------------------------------------------------------

NO_FAKE_CASES = [
    pytest.param(
        "core/stubs.py",
        """
        def later(x: int) -> int:
            raise NotImplementedError
        """,
        ["core/stubs.py:2: raises NotImplementedError outside an abstract interface (ABC/Protocol/@abstractmethod)"],
        id="not-implemented-in-function",
    ),
    pytest.param(
        "core/stubs.py",
        """
        class Store:
            def save(self) -> None:
                raise NotImplementedError("subclasses save")
        """,
        ["core/stubs.py:3: raises NotImplementedError outside an abstract interface (ABC/Protocol/@abstractmethod)"],
        id="not-implemented-in-concrete-class",
    ),
    pytest.param(
        "memory/notes.py",
        """
        # TODO: write this
        VALUE = 1  # FIXME later
        OTHER = 2  # XXX check
        TEXT = "a TODO inside a string is not a comment"
        """,
        [
            "memory/notes.py:1: TODO comment: do the work or remove the note",
            "memory/notes.py:2: FIXME comment: do the work or remove the note",
            "memory/notes.py:3: XXX comment: do the work or remove the note",
        ],
        id="todo-fixme-xxx-comments",
    ),
    pytest.param(
        "scripts/setup-thing",
        """
        #!/usr/bin/env bash
        # TODO install it
        echo ok
        """,
        ["scripts/setup-thing:2: TODO comment: do the work or remove the note"],
        id="todo-in-shell-script",
    ),
    pytest.param(
        "telemetry/hollow.py",
        '''
        def a() -> None:
            pass


        def b() -> None: ...


        def c() -> None:
            """Docstring."""
            pass


        def d() -> None:
            """Only a docstring."""


        def e() -> None:
            return None


        def f() -> int:
            return 0


        def g() -> str:
            return ""


        def h() -> dict[str, int]:
            return {}


        def i() -> list[int]:
            return []


        def j() -> None:
            return
        ''',
        [
            "telemetry/hollow.py:1: function `a` has only `pass`: implement it or remove it",
            "telemetry/hollow.py:5: function `b` has only `...`: implement it or remove it",
            "telemetry/hollow.py:8: function `c` has only `pass`: implement it or remove it",
            "telemetry/hollow.py:13: function `d` has only a docstring: implement it or remove it",
            "telemetry/hollow.py:17: function `e` only returns a placeholder (`return None`)"
            ": implement it or remove it",
            "telemetry/hollow.py:21: function `f` only returns a placeholder (`return 0`): implement it or remove it",
            "telemetry/hollow.py:25: function `g` only returns a placeholder (`return ''`): implement it or remove it",
            "telemetry/hollow.py:29: function `h` only returns a placeholder (`return {}`): implement it or remove it",
            "telemetry/hollow.py:33: function `i` only returns a placeholder (`return []`): implement it or remove it",
            "telemetry/hollow.py:37: function `j` only returns a placeholder (`return`): implement it or remove it",
        ],
        id="stub-function-bodies",
    ),
    pytest.param(
        "tests/test_hollow.py",
        """
        import pytest


        def test_nothing_checked() -> None:
            x = 1 + 1
            print(x)


        class TestGroup:
            def test_method_without_assert(self) -> None:
                print("hello")
        """,
        [
            "tests/test_hollow.py:4: test `test_nothing_checked` cannot fail: it has no assert, "
            "pytest.raises or assertion helper",
            "tests/test_hollow.py:10: test `test_method_without_assert` cannot fail: it has no assert, "
            "pytest.raises or assertion helper",
        ],
        id="tests-without-assertion",
    ),
    pytest.param(
        "tests/test_skips.py",
        """
        import pytest


        @pytest.mark.skip
        def test_a() -> None:
            assert True


        @pytest.mark.skip()
        def test_b() -> None:
            assert True


        @pytest.mark.skipif(True)
        def test_c() -> None:
            assert True


        def test_d() -> None:
            pytest.skip()
            assert True


        def test_e() -> None:
            pytest.skip("")
            assert True
        """,
        [
            "tests/test_skips.py:4: bare pytest.mark.skip without a reason: call it with reason=...",
            "tests/test_skips.py:9: pytest.mark.skip without a reason: pass reason=...",
            "tests/test_skips.py:14: pytest.mark.skipif without a reason: pass reason=...",
            "tests/test_skips.py:20: pytest.skip without a reason: say why the test is skipped",
            "tests/test_skips.py:25: pytest.skip without a reason: say why the test is skipped",
        ],
        id="skips-without-reason",
    ),
]


@pytest.mark.parametrize(("rel", "source", "expected"), NO_FAKE_CASES)
def test_no_fake_scan_reports_each_stub(tmp_path: Path, rel: str, source: str, expected: list[str]) -> None:
    write(tmp_path, rel, source)

    result = run_script("no_fake_scan", "--root", str(tmp_path))

    assert findings(result) == expected
    assert result.stdout.splitlines()[-1] == f"no-fake scan: 1 files scanned, {len(expected)} findings"
    assert result.returncode == 1


CLEAN_CORE = '''
"""Interfaces and real code that the scan must leave alone."""

import abc
from abc import ABC, abstractmethod
from typing import Protocol, overload


class Adapter(ABC):
    def stream(self) -> None:
        raise NotImplementedError

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""


class Meta(metaclass=abc.ABCMeta):
    def run(self) -> None:
        raise NotImplementedError


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...

    def flush(self) -> None:
        """Flush buffered data."""


class Concrete:
    @abc.abstractmethod
    def must(self) -> None:
        raise NotImplementedError


@overload
def parse(value: int) -> int: ...
@overload
def parse(value: str) -> str: ...
def parse(value: int | str) -> int | str:
    return value


def count(items: list[int]) -> int:
    return len(items)


def default_port() -> int:
    return 8000


TEXT = "TODO and FIXME in a string are data, not notes"
'''

CLEAN_TESTS = """
import pytest


def assert_round_trip(value: int) -> None:
    assert value == value


def check_rows(n: int) -> None:
    assert n >= 0


def test_plain_assert() -> None:
    assert 1 + 1 == 2


def test_raises() -> None:
    with pytest.raises(ZeroDivisionError):
        1 / 0


def test_query_pin(django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        int("1")


def test_helper_assert() -> None:
    assert_round_trip(3)


def test_helper_check() -> None:
    check_rows(2)


@pytest.mark.skip(reason="shows the reason rule")
def test_skipped_with_reason() -> None:
    assert False


@pytest.mark.skipif(True, reason="shows the reason rule")
def test_skipif_with_reason() -> None:
    assert False


def test_runtime_skip_with_reason() -> None:
    pytest.skip("Chromium is not installed")
    assert False


def helper_without_assert() -> int:
    return 3
"""


def test_no_fake_scan_passes_interfaces_and_real_code(tmp_path: Path) -> None:
    write(tmp_path, "core/clean.py", CLEAN_CORE)
    write(tmp_path, "tests/test_clean.py", CLEAN_TESTS)
    write(tmp_path, "scripts/tool", "#!/usr/bin/env bash\n# installs the thing\necho ok\n")

    result = run_script("no_fake_scan", "--root", str(tmp_path))

    assert result.stdout == "no-fake scan: 3 files scanned, 0 findings\n"
    assert result.returncode == 0


def test_no_fake_scan_skips_migrations_venv_and_other_directories(tmp_path: Path) -> None:
    stub = "def later() -> None:\n    pass\n"
    write(tmp_path, "core/migrations/0001_initial.py", stub)
    write(tmp_path, ".venv/lib/site.py", stub)
    write(tmp_path, "docs/example.py", stub)
    write(tmp_path, "core/real.py", "def real() -> int:\n    return 1 + 1\n")

    result = run_script("no_fake_scan", "--root", str(tmp_path))

    assert result.stdout == "no-fake scan: 1 files scanned, 0 findings\n"
    assert result.returncode == 0


def test_test_rule_applies_only_to_test_files(tmp_path: Path) -> None:
    write(tmp_path, "core/helpers.py", "def test_connection() -> bool:\n    return bool(1)\n")

    result = run_script("no_fake_scan", "--root", str(tmp_path))

    assert result.returncode == 0, result.stdout


# --- secret scan -----------------------------------------------------------------------------------
# Key-shaped values are assembled at run time so that this file itself stays clean for the scan
# of tracked files.
RANDOM_32 = "q7Rk2Zp9Lw4Xv1Mn" + "8Bt3Hs6Jd5Fc0GaY"
RANDOM_48 = RANDOM_32 + "Ue4Wi7Oo2Pq9Aa1S"
SECRET_CASES = [
    pytest.param("sk-" + "proj-" + RANDOM_32, "OpenAI project key (sk-proj-)", id="sk-proj"),
    pytest.param("sk-" + "ant-api03-" + RANDOM_32, "Anthropic key (sk-ant-)", id="sk-ant"),
    pytest.param("sk-" + RANDOM_32, "API key (sk-)", id="sk"),
    pytest.param("AI" + "za" + RANDOM_32 + "xyz", "Google API key (AIza)", id="google"),
    pytest.param("gh" + "p_" + RANDOM_32 + "abcd", "GitHub token (ghp_/gho_)", id="ghp"),
    pytest.param("gh" + "o_" + RANDOM_32 + "abcd", "GitHub token (ghp_/gho_)", id="gho"),
    pytest.param("github" + "_pat_" + RANDOM_32, "GitHub token (github_pat_)", id="github-pat"),
    pytest.param("xo" + "xb-" + "1234567890-" + RANDOM_32, "Slack token (xox?-)", id="slack"),
    pytest.param("AK" + "IA" + "Q3EGRT7KXMPL4WZN", "AWS access key id (AKIA)", id="aws"),
    pytest.param("Bear" + "er " + RANDOM_32, "Bearer token", id="bearer"),
    pytest.param("-----BEGIN " + "RSA PRIVATE KEY-----", "PEM private key", id="pem-rsa"),
    pytest.param("-----BEGIN " + "OPENSSH PRIVATE KEY-----", "PEM private key", id="pem-openssh"),
]


@pytest.mark.parametrize(("value", "kind"), SECRET_CASES)
def test_secret_scan_reports_each_key_shape(tmp_path: Path, value: str, kind: str) -> None:
    write(tmp_path, "settings.txt", f"# settings\nheader = {value}\n")

    result = run_script("secret_scan", "--root", str(tmp_path), "settings.txt")

    lines = findings(result)
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith(f"settings.txt:2: {kind}: ")
    assert value[9:] not in result.stdout  # the report shows a prefix, never the whole value
    assert result.stdout.splitlines()[-1] == "secret scan: 1 files scanned, 1 findings"
    assert result.returncode == 1


def test_secret_scan_reports_high_entropy_assignments(tmp_path: Path) -> None:
    write(
        tmp_path,
        "app.py",
        f"""
        SIGNING_KEY = "{RANDOM_32}"
        hex_token = "{RANDOM_32.encode().hex()}"
        blob = "{RANDOM_48}"
        """,
    )

    result = run_script("secret_scan", "--root", str(tmp_path), "app.py")

    assert [line.split(": ", 2)[:2] for line in findings(result)] == [
        ["app.py:1", "high-entropy value assigned to SIGNING_KEY"],
        ["app.py:2", "high-entropy value assigned to hex_token"],
        ["app.py:3", "high-entropy base64 string"],
    ]
    assert result.returncode == 1


def test_secret_scan_passes_clean_files_and_marked_fixtures(tmp_path: Path) -> None:
    write(
        tmp_path,
        "clean.py",
        f"""
        API_KEY_ENV = "OPENAI_API_KEY"
        password = "a-long-test-password-123"
        commit = "{"0123456789abcdef" * 2 + "01234567"}"
        sha = "--hash=sha256:{"9f86d081884c7d659a2feaa0c55ad015" * 2}"
        fake = "{"sk-" + "proj-RECOGNISABLE-" + RANDOM_32}"
        aws_doc = "{"AK" + "IAIOSFODNN7EXAMPLE"}"
        task_name = "task-{RANDOM_32}"
        integrity = "sha512-{RANDOM_48}"
        """,
    )

    result = run_script("secret_scan", "--root", str(tmp_path), "clean.py")

    assert result.stdout == "secret scan: 1 files scanned, 0 findings\n"
    assert result.returncode == 0


def test_secret_scan_database_mode_reports_no_finding_on_a_fresh_database() -> None:
    result = run_script("secret_scan", "--database")

    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("secret scan --database: "), result.stdout + result.stderr
    assert summary.endswith(" 0 findings")
    assert result.returncode == 0


def test_database_mode_finds_env_values_in_a_dump() -> None:
    secret_scan = load_script("secret_scan")
    value = secret_scan.recognisable_value("OPENAI_API_KEY", "abc123def456")
    dump = f"INSERT INTO \"core_provider\" VALUES(1,'openai','{value}');"

    found = secret_scan.scan_text(dump, "database", allow_fixtures=False, entropy_rules=False)
    allowed = secret_scan.scan_text(dump, "database", allow_fixtures=True, entropy_rules=False)

    assert value == "sk-" + "proj-SECRETSCAN-OPENAI-API-KEY-abc123def456"
    assert [str(f).split(": ")[1] for f in found] == ["OpenAI project key (sk-proj-)"]
    assert len(allowed) == 1  # SECRETSCAN is not an allow-list marker: a leak is always reported
