"""Fixtures of the unit tests: small input files, batch files and real mp4 videos.

Plain helpers live in tests/fakes/ (make_mp4: tests/fakes/videos.py)."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from cosmos_driver.content import COLLECTIONS_PATH
from cosmos_driver.store import RunStore
from tests.fakes.videos import make_mp4

# The collection's modules import its module_utils by their full name, as Ansible ships them
# to a host: ansible_collections.cosmos.driver.plugins.module_utils.cosmos_staging. Here the
# namespace package ansible_collections is the one the cosmos_driver package carries.
_collections = types.ModuleType("ansible_collections")
_collections.__path__ = [str(COLLECTIONS_PATH / "ansible_collections")]
sys.modules.setdefault("ansible_collections", _collections)


@pytest.fixture
def mp4() -> Callable[..., Path]:
    """`mp4(path, frames=8, size=(64, 48))` writes a real video and returns its path."""
    return make_mp4


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    """An empty state directory of run records."""
    return RunStore(tmp_path / "state")


@pytest.fixture
def batch_dir(tmp_path: Path) -> Path:
    """A folder with fake input videos under videos/ (batch.py only checks they exist)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("color.mp4", "depth.mp4", "edge.mp4", "seg.mp4"):
        (videos / name).write_bytes(b"not really a video: " + name.encode())
    return tmp_path


@pytest.fixture
def write_batch(batch_dir: Path) -> Callable[[str], Path]:
    """`write_batch(text)` writes a dedented batch file into batch_dir and returns its path."""
    counter = iter(range(1000))

    def write(text: str, name: str | None = None) -> Path:
        path = batch_dir / (name or f"batch{next(counter)}.yaml")
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def _line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line of `path` that contains `needle`."""
    seen = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} (occurrence {occurrence}) not in {path}")


@pytest.fixture
def line_of() -> Callable[..., int]:
    """`line_of(path, needle, occurrence=1)`: the line number where `needle` appears."""
    return _line_of
