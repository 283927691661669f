"""The house's layout holds: imports point down, and `agentchat_site/` is wiring only.

web → runtime → memory, telemetry → core      (agentchat_site wires them all)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("agentchat_site", "core", "memory", "telemetry", "runtime", "web")
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"core"},
    "memory": {"memory", "core"},
    "telemetry": {"telemetry", "core"},
    "runtime": {"runtime", "memory", "telemetry", "core"},
    "web": {"web", "runtime", "memory", "telemetry", "core"},
    "agentchat_site": set(APPS),
}
WIRING = {"__init__.py", "settings.py", "urls.py", "asgi.py", "wsgi.py", "envconfig.py"}


def imported_apps(path: Path) -> set[str]:
    """The project apps a module imports, at any depth of the file (functions included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in APPS)
    return found


def modules(app: str) -> list[Path]:
    return sorted(path for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts or app == "core")


@pytest.mark.parametrize("app", sorted(MAY_IMPORT))
def test_each_app_imports_only_the_apps_below_it(app: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_apps(path) - MAY_IMPORT[app])
        for path in modules(app)
        if imported_apps(path) - MAY_IMPORT[app]
    }
    assert wrong == {}


def test_agentchat_site_holds_only_the_wiring() -> None:
    files = {
        str(path.relative_to(ROOT / "agentchat_site"))
        for path in (ROOT / "agentchat_site").rglob("*")
        if path.is_file()
    }
    files = {name for name in files if "__pycache__" not in name}
    assert files <= WIRING, sorted(files - WIRING)


def test_only_the_wiring_and_the_pages_import_the_runtime() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for app in ("core", "memory", "telemetry")
        for path in modules(app)
        if "runtime" in imported_apps(path)
    }
    assert importers == set()


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f() -> None:\n    from runtime.turns import turn_run\n    import memory.search\n")
    assert imported_apps(sample) == {"runtime", "memory"}
