"""The configuration file compared with the database: `loaded`, `out_of_date`, `invalid`, ….

Each request reads the file. Validating it (TOML, every rule, each tool's JSON Schema) costs
more than the rest of the bootstrap together (bench/RESULTS.md, "Bootstrap: what is kept"), and
its result is a pure function of the file's bytes, the skills folder and whether each skill's
`instructions_path` is a file in it. So the last validation per path is kept (`_file_checks`) and
reused while all of those are unchanged: exactly what validating again would give.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.config.contracts import ConfigDocument, Kind
from core.config.loading import ConfigFileError, config_file_read
from core.config.validation import ConfigInvalidError
from runtime.bootstrap.response import MAX_FILE_PROBLEMS, ConfigFileInfo, FileState


def config_file_path() -> Path:
    from django.conf import settings

    return Path(settings.AGENTCHAT_CONFIG)


@dataclass(frozen=True)
class _FileCheck:
    """What validating a configuration file depended on, and what it gave."""

    data: bytes
    skills_dir: str
    # Each skill's instructions_path as written, with what the filesystem said when it was checked.
    skill_files: tuple[tuple[str, str, bool], ...]
    result: ConfigDocument | ConfigFileInfo


# Path → the last validation of that file (see the module's docstring).
_file_checks: dict[str, _FileCheck] = {}


def _skill_files(data: bytes, skills_dir: str) -> tuple[tuple[str, str, bool], ...]:
    """(instructions_path, resolved path, is a file) for each skill of the TOML in `data` that names one."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ()
    skills = raw.get(Kind.SKILL.value)
    values = [
        item["instructions_path"]
        for item in (skills if isinstance(skills, list) else [])
        if isinstance(item, dict) and isinstance(item.get("instructions_path"), str)
    ]
    return tuple(_skill_file_state(value, skills_dir) for value in values)


def _skill_file_state(value: str, skills_dir: str) -> tuple[str, str, bool]:
    try:
        candidate = (Path(skills_dir) / value).resolve()
        return value, str(candidate), candidate.is_file()
    except (OSError, ValueError):  # a NUL byte, a path too long: validation reports it
        return value, "", False


def _config_file_document(path: Path) -> ConfigDocument | ConfigFileInfo:
    """The validated document in `path`, or the file's state when it cannot be used.

    The last result per path is reused while the file's bytes, the skills folder and the state of
    every skill file it names are unchanged (each request still reads the file and stats those).
    """
    from django.conf import settings

    try:
        data = path.read_bytes()
    except OSError:
        return _config_file_validate(path)  # missing or unreadable: nothing worth keeping
    skills_dir = str(Path(settings.AGENTCHAT_SKILLS_DIR).resolve())
    key = str(path)
    known = _file_checks.get(key)
    if (
        known is not None
        and known.data == data
        and known.skills_dir == skills_dir
        and all(_skill_file_state(value, skills_dir) == (value, *state) for value, *state in known.skill_files)
    ):
        return known.result
    skill_files = _skill_files(data, skills_dir)
    result = _config_file_validate(path)
    try:
        unchanged = path.read_bytes() == data
    except OSError:
        unchanged = False
    if unchanged:  # validated what was read: keep it (a file rewritten meanwhile is validated next time)
        _file_checks[key] = _FileCheck(data=data, skills_dir=skills_dir, skill_files=skill_files, result=result)
    return result


def _config_file_validate(path: Path) -> ConfigDocument | ConfigFileInfo:
    try:
        return config_file_read(path)
    except ConfigFileError as exc:
        state: FileState = "missing" if not path.exists() else "invalid"
        return ConfigFileInfo(path=str(path), state=state, problems=(str(exc),), problem_count=1)
    except ConfigInvalidError as exc:
        problems = tuple(str(problem) for problem in exc.problems)
        return ConfigFileInfo(
            path=str(path), state="invalid", problems=problems[:MAX_FILE_PROBLEMS], problem_count=len(problems)
        )


def config_file_info(stored: ConfigDocument) -> ConfigFileInfo:
    """Whether the configuration file is readable and valid, and whether the database holds `stored`."""
    path = config_file_path()
    document = _config_file_document(path)
    if isinstance(document, ConfigFileInfo):
        return document
    return _config_file_compare(path, document, stored)


def _config_file_compare(path: Path, document: ConfigDocument, stored: ConfigDocument) -> ConfigFileInfo:
    if document.count() == 0:
        return ConfigFileInfo(path=str(path), state="empty")
    if stored.count() == 0:
        return ConfigFileInfo(path=str(path), state="not_loaded")
    differences = []
    for kind in Kind:
        current = {record.key: record for record in stored.records(kind)}
        for record in document.records(kind):
            if record.key not in current:
                differences.append(f"{kind.label} {record.key!r} is in the file but not loaded")
            elif current[record.key] != record:
                differences.append(f"{kind.label} {record.key!r} differs from the file")
    if differences:
        return ConfigFileInfo(path=str(path), state="out_of_date", differences=tuple(differences))
    return ConfigFileInfo(path=str(path), state="loaded")
