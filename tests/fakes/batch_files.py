"""Batch files for the integration tests: jobs beside a copy of the example input videos."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.fakes.cli import ROOT


def write_batch(folder: Path, name: str, jobs: list[dict], defaults: dict | None = None) -> Path:
    """A batch file beside a copy of the example input videos."""
    inputs = folder / "inputs"
    if not inputs.exists():
        shutil.copytree(ROOT / "examples" / "inputs", inputs)
    path = folder / f"{name}.yaml"
    body = {"name": name, "defaults": defaults or {}, "jobs": jobs}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def job(name: str, **extra) -> dict:
    """A one-second simulated job on the example color video, with `extra` fields."""
    base = {
        "name": name,
        "prompt": f"a test scene for {name}",
        "inputs": {"color": "inputs/street-color.mp4"},
        "controls": {"edge": 0.5},
        "env": {"COSMOS_SIM_DURATION": "1"},
    }
    base.update(extra)
    return base
