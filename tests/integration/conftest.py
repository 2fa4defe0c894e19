"""Integration fixtures: the real lab (sshd + dockerd on this machine). The helpers that run
the real CLI and write batch files are in tests/fakes/cli.py and tests/fakes/batch_files.py.

If the lab cannot start, every test here errors loudly; nothing is skipped."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths


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
