"""The collection's filter plugins loaded as Python modules, and a play run on localhost with
the real ansible-playbook: for the tests of the roles' vars files."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from cosmos_driver.content import COLLECTION, COLLECTIONS_PATH


def load_filter(name: str) -> ModuleType:
    """plugins/filter/<name>.py, imported by path as Ansible would find it."""
    spec = importlib.util.spec_from_file_location(
        f"cosmos_filter_{name}", COLLECTION / "plugins" / "filter" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_local_play(tmp_path: Path, play: str) -> Path:
    """Run `play` on localhost with the collection on the path, passing `out` (a file the play
    writes what it saw to); return that path once the play succeeded."""
    (tmp_path / "play.yml").write_text(play)
    out = tmp_path / "seen.json"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "play.yml",
         "-e", f"out={out}", "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    return out
