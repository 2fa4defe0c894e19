"""Running the lab's Cosmos simulator scripts directly, outside the image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parents[2] / "cosmos_driver" / "lab" / "simulator"
TRANSFER = SIM_DIR / "transfer.py"
TORCHRUN = SIM_DIR / "torchrun"
# The length of the input video the simulator tests feed it.
INPUT_FRAMES = 12


def count_frames(path: Path) -> int:
    """Count decoded video frames with ffprobe."""
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(out.stdout.strip())


def sim_env(**extra: str) -> dict[str, str]:
    """A clean environment for the simulator with a short simulated duration."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COSMOS_SIM_")
        and key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES")
    }
    env["COSMOS_SIM_DURATION"] = "0.2"
    env.update(extra)
    return env


def run_merged(command: list[str], folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a simulator command in `folder` with sim_env(**env), stdout and stderr merged."""
    return subprocess.run(
        command,
        cwd=folder,
        env=sim_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
