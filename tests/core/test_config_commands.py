"""`check_config` and `load_config`: every problem printed, atomic loads, idempotent reloads, --prune."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from core.models import AgentProfile, ModelRoute, Provider, Team, TeamMember
from tests.core.conftest import EXAMPLE, MINIMAL, WriteConfig
from tests.procs import run_manage

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(command: str, *args: str) -> tuple[str, str]:
    """Run a command expected to fail: (its error line, what it printed on stderr)."""
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(command, *args, stdout=io.StringIO(), stderr=err)
    return str(caught.value), err.getvalue()


def db_state() -> str:
    """Everything the configuration tables hold, as comparable text."""
    out = io.StringIO()
    call_command("dumpdata", "core", stdout=out)
    rows = [row for row in json.loads(out.getvalue()) if row["model"] != "core.agentsession"]
    return json.dumps(rows, sort_keys=True)


def test_check_config_reports_a_valid_file_with_a_summary(minimal_path: Path) -> None:
    out, err = run("check_config", str(minimal_path))
    assert out.splitlines()[0] == (
        f"{minimal_path}: valid (2 providers, 2 routes, 1 tool, 1 skill, 1 MCP server, 2 agents, 1 team)"
    )
    assert err == ""
    assert Provider.objects.count() == 0  # checking never writes


def test_check_config_prints_every_problem_and_fails(write_config: WriteConfig) -> None:
    path = write_config(
        MINIMAL.replace('api_key_env = "OPENAI_API_KEY"', 'api_key_env = "sk-EXAMPLEabcdefghijklmnop"')
        + '\n[[routes]]\nalias = "other"\nprovider = "missing"\nmodel_id = "m"\n'
        "context_window_tokens = 10\nmax_output_tokens = 5\nis_default = true\n"
    )
    error, printed = fails("check_config", str(path))
    assert printed.splitlines() == [
        "providers[1].api_key_env: 'sk-EX…' looks like a secret; give the name of an environment variable",
        "routes[2].provider: no provider named 'missing'; define it first or fix the name",
        "routes[2].is_default: a second default route; routes[0] ('main') is already the default; keep one",
    ]
    assert error == f"{path}: 3 problems found; fix them and run the command again"
    assert "sk-EXAMPLEabcdefghij" not in printed + error


def test_check_config_uses_the_configured_file_by_default(minimal_path: Path, settings: Settings) -> None:
    settings.AGENTCHAT_CONFIG = minimal_path
    out, _ = run("check_config")
    assert out.startswith(f"{minimal_path}: valid")


@pytest.mark.parametrize("command", ["check_config", "load_config"])
def test_missing_unreadable_and_non_toml_files_give_one_line(
    command: str, tmp_path: Path, write_config: WriteConfig
) -> None:
    missing = tmp_path / "nope.toml"
    assert fails(command, str(missing))[0] == (
        f"{missing}: no such file; pass an existing file or set AGENTCHAT_CONFIG"
    )
    assert fails(command, str(tmp_path))[0] == f"{tmp_path}: is a directory; give the path of a .toml file"
    broken = write_config("[[providers]\nname = 'x'\n", "broken.toml")
    assert fails(command, str(broken))[0] == (
        f"{broken}: not valid TOML: Expected ']]' at the end of an array declaration (at line 1, column 12)"
    )
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert fails(command, str(binary))[0] == f"{binary}: not UTF-8 text; save it as UTF-8"


def test_load_config_creates_every_record(minimal_path: Path) -> None:
    out, _ = run("load_config", str(minimal_path))
    assert out.splitlines()[:3] == [
        "created provider 'replay'",
        "created provider 'openai'",
        "created tool 'web_search'",
    ]
    assert f"Loaded {minimal_path}: 10 created, 0 updated, 0 disabled, 0 unchanged." in out.splitlines()
    route = ModelRoute.objects.select_related("provider").get(alias="fast")
    assert (route.provider.name, route.model_id, str(route.price_input_per_mtok)) == (
        "openai",
        "gpt-4o-mini",
        "0.150000",
    )
    assert ModelRoute.objects.get(is_default=True).alias == "main"
    members = TeamMember.objects.filter(team__name="desk").order_by("position").values_list("agent__name", flat=True)
    assert list(members) == ["researcher", "writer"]
    assert Team.objects.get(name="desk").lead.name == "researcher"
    agent = AgentProfile.objects.get(name="researcher")
    assert [t.name for t in agent.tools.all()] == ["web_search"]
    assert [s.name for s in agent.skills.all()] == ["notes"]


def test_loading_the_same_file_twice_changes_nothing(minimal_path: Path) -> None:
    run("load_config", str(minimal_path))
    before = db_state()
    out, _ = run("load_config", str(minimal_path))
    assert out.splitlines()[0] == f"No changes: the database already matches {minimal_path} (10 records)."
    assert db_state() == before


def test_load_config_updates_changed_records_and_names_the_fields(
    minimal_path: Path, write_config: WriteConfig
) -> None:
    run("load_config", str(minimal_path))
    changed = write_config(
        MINIMAL.replace('model_id = "gpt-4o-mini"', 'model_id = "gpt-4.1-mini"').replace(
            'members = ["researcher", "writer"]', 'members = ["writer", "researcher"]'
        ),
        "changed.toml",
    )
    out, _ = run("load_config", str(changed))
    assert out.splitlines()[:3] == [
        "updated route 'fast': model_id",
        "updated team 'desk': members",
        f"Loaded {changed}: 0 created, 2 updated, 0 disabled, 8 unchanged.",
    ]
    members = TeamMember.objects.filter(team__name="desk").order_by("position").values_list("agent__name", flat=True)
    assert list(members) == ["writer", "researcher"]


def test_moving_the_default_route_clears_the_old_default(minimal_path: Path, write_config: WriteConfig) -> None:
    run("load_config", str(minimal_path))
    moved = MINIMAL.replace("is_default = true\n", "").replace(
        "price_output_per_mtok = 0.6\n", "price_output_per_mtok = 0.6\nis_default = true\n"
    )
    out, _ = run("load_config", str(write_config(moved, "moved.toml")))
    assert out.splitlines()[:2] == ["updated route 'main': is_default", "updated route 'fast': is_default"]
    assert list(ModelRoute.objects.filter(is_default=True).values_list("alias", flat=True)) == ["fast"]


def test_an_invalid_record_at_the_end_leaves_the_database_unchanged(
    minimal_path: Path, write_config: WriteConfig
) -> None:
    run("load_config", str(minimal_path))
    before = db_state()
    bad = write_config(
        MINIMAL.replace('model_id = "replay-1"', 'model_id = "replay-2"')
        + '\n[[providers]]\nname = "new"\nkind = "replay"\n'
        + '\n[[teams]]\nname = "broken"\nlead = "nobody"\nmembers = ["writer"]\n',
        "bad.toml",
    )
    error, printed = fails("load_config", str(bad))
    assert printed.splitlines() == ["teams[1].lead: 'nobody' is not a member of the team; add it to members"]
    assert error == f"{bad}: 1 problem found; fix them and run the command again; the database was not changed"
    assert db_state() == before


def test_a_failure_while_writing_rolls_everything_back(minimal_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even past validation, the load is one transaction: a crash on the last record keeps nothing."""
    from core.config import services as service

    real_write = service._write

    def failing_write(record: object, instance: object, lookup: object) -> object:
        if getattr(record, "name", None) == "desk":
            raise RuntimeError("disk full")
        return real_write(record, instance, lookup)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "_write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        call_command("load_config", str(minimal_path), stdout=io.StringIO())
    assert Provider.objects.count() == 0
    assert AgentProfile.objects.count() == 0


def test_prune_disables_records_absent_from_the_file(minimal_path: Path, write_config: WriteConfig) -> None:
    run("load_config", str(minimal_path))
    smaller = write_config(
        MINIMAL.split("[[teams]]")[0].replace(
            '\n[[agents]]\nname = "writer"\nroute = "fast"\nmcp_servers = ["files"]\n', ""
        ),
        "smaller.toml",
    )
    out, _ = run("load_config", str(smaller))
    assert out.splitlines()[0] == f"No changes: the database already matches {smaller} (8 records)."
    assert Team.objects.get(name="desk").enabled
    out, _ = run("load_config", str(smaller), "--prune")
    assert out.splitlines()[:3] == [
        "disabled agent 'writer' (not in the file)",
        "disabled team 'desk' (not in the file)",
        f"Loaded {smaller}: 0 created, 0 updated, 2 disabled, 8 unchanged.",
    ]
    assert not Team.objects.get(name="desk").enabled
    assert not AgentProfile.objects.get(name="writer").enabled
    out, _ = run("load_config", str(smaller), "--prune")
    assert out.splitlines()[0] == f"No changes: the database already matches {smaller} (8 records)."


def test_the_example_file_loads_with_no_keys_and_reports_what_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    out, _ = run("load_config", str(EXAMPLE))
    assert f"Loaded {EXAMPLE}: 18 created, 0 updated, 0 disabled, 0 unchanged." in out.splitlines()
    assert "  blocked: provider 'openai': OPENAI_API_KEY is not set" in out.splitlines()
    assert ModelRoute.objects.get(is_default=True).alias == "replay"


@pytest.mark.django_db(transaction=True)
def test_load_config_in_a_fresh_process_exits_non_zero_on_an_invalid_file(
    write_config: WriteConfig, minimal_path: Path
) -> None:
    bad = write_config(MINIMAL + '\n[[tools]]\nname = "web_search"\n', "dup.toml")
    result = run_manage(["load_config", str(bad)])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "tools[1].name: 'web_search' is already used by tools[0]; names must be unique",
        f"CommandError: {bad}: 1 problem found; fix them and run the command again; the database was not changed",
    ]
    assert Provider.objects.count() == 0
    ok = run_manage(["load_config", str(minimal_path)])
    assert ok.returncode == 0, ok.stderr
    assert Provider.objects.count() == 2
