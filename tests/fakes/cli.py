"""The installed `cosmos` command, run as a user would, and what it leaves in a state folder:
for the integration tests against the lab."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COSMOS = str(Path(sys.executable).parent / "cosmos")


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


def start_infer(batch: Path, state: Path, inventory: Path, env=None) -> subprocess.Popen:
    """`cosmos infer … --json` started in the background, its output piped."""
    return subprocess.Popen(
        [COSMOS, "infer", "--batch", str(batch), "--state-dir", str(state),
         "--inventory", str(inventory), "--json"],
        cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def records(state: Path) -> dict[str, dict]:
    """Every run record of a state folder, by run id."""
    return {p.parent.name: json.loads(p.read_text()) for p in (state / "runs").glob("*/run.json")}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
