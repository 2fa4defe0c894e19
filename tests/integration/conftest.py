"""Integration fixtures: the real lab (sshd + dockerd on this machine) and the real CLI.

If the lab cannot start, every test here errors loudly; nothing is skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths

ROOT = Path(__file__).resolve().parents[2]
COSMOS = str(Path(sys.executable).parent / "cosmos")


@dataclass(frozen=True)
class Lab:
    paths: LabPaths
    inventory: Path

    def engine(self, *args: str) -> str:
        """The lab's engine CLI, for assertions only (the driver never does this)."""
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.paths.docker_socket}")
        done = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def containers(self, label: str) -> list[str]:
        return self.engine("ps", "-a", "-q", "--filter", f"label={label}").split()


@pytest.fixture(scope="session")
def lab() -> Lab:
    paths = LabPaths.from_env()
    inventory = lab_control.up(paths, hosts=2, gpus=2)
    return Lab(paths, inventory)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def cosmos(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> CliResult:
    """Run the installed `cosmos` command as a user would."""
    done = subprocess.run(
        [COSMOS, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def infer_json(batch: Path, state: Path, inventory: Path) -> CliResult:
    """`cosmos infer --batch … --json` on the given state directory and inventory."""
    return cosmos(
        "infer", "--batch", str(batch), "--state-dir", str(state),
        "--inventory", str(inventory), "--json",
    )  # fmt: skip


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
    base = {
        "name": name,
        "prompt": f"a test scene for {name}",
        "inputs": {"color": "inputs/street-color.mp4"},
        "controls": {"edge": 0.5},
        "env": {"COSMOS_SIM_DURATION": "1"},
    }
    base.update(extra)
    return base
