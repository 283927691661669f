"""Reading the operator's TOML configuration file into a validated `ConfigDocument`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from core.config.contracts import ConfigDocument
from core.config.validation import document_parse


class ConfigFileError(Exception):
    """The file cannot be read as TOML; the message is one line naming the file and the fix."""


def config_file_read(path: Path) -> ConfigDocument:
    """Parse and validate `path`; raises `ConfigFileError` or `ConfigInvalidError` (every problem)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: no such file; pass an existing file or set AGENTCHAT_CONFIG") from None
    except IsADirectoryError:
        raise ConfigFileError(f"{path}: is a directory; give the path of a .toml file") from None
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    try:
        # The decoder's message names a line and column, never the text there (which may be a secret).
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid TOML: {exc}") from None
    return document_parse(raw)
