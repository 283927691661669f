"""Load the project's `scripts/*.py` as modules, so their functions can be tested directly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def load_script(name: str) -> ModuleType:
    """Import `scripts/<name>.py` under the module name `agentchat_scripts.<name>`."""
    module_name = f"agentchat_scripts.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, SCRIPTS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load scripts/{name}.py")
    # As when a script runs as `python scripts/NAME.py`: its siblings (`scan_report`) are importable.
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class body runs.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
