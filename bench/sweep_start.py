"""Sweep start: how soon a large sweep starts its first run, and the driver's memory.

Runs `cosmos infer --yes --json` on the lab twice in the same session: a one-run batch (the
reference: the fixed cost of starting the driver, validating, reading the inventory and
launching one container) and a sweep of --runs runs of the same job. For each it prints the
seconds from starting the command to its first `running` line, and their ratio. For the
sweep it then keeps watching for --watch seconds: the driver's peak resident memory
(VmHWM), how many run records exist, and the disk they take. Then it interrupts the driver
(SIGINT, as Ctrl-C) and stops the sweep's containers with `cosmos kill --batch`.

    .venv/bin/python -m bench.sweep_start [--runs 10000] [--watch 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from cosmos_driver import ids
from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths

ROOT = Path(__file__).resolve().parents[1]
COSMOS = str(Path(sys.executable).parent / "cosmos")


def write_batch(folder: Path, name: str, runs: int, duration: int) -> Path:
    shutil.copytree(ROOT / "examples" / "inputs", folder / "inputs", dirs_exist_ok=True)
    job = {
        "name": "sweep",
        "prompt": "a rain-soaked street at night",
        "inputs": {"color": "inputs/street-color.mp4"},
        "controls": {"edge": 0.5},
        "env": {"COSMOS_SIM_DURATION": str(duration)},
        "seed": list(range(runs)) if runs > 1 else 1,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "jobs": [job]}, sort_keys=False))
    return path


class Driver:
    """One `cosmos infer` process, its stderr read line by line as it comes."""

    def __init__(self, batch: Path, state: Path, inventory: Path) -> None:
        self.started = time.monotonic()
        self.first_running: float | None = None
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [COSMOS, "infer", str(batch), "--yes", "--json", "--state-dir", str(state),
             "--inventory", str(inventory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())
            if self.first_running is None and ": running on " in line:
                self.first_running = time.monotonic() - self.started

    def peak_rss_mb(self) -> float:
        """VmHWM of the driver process (its own peak resident memory, not its children's)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def wait_first_running(self, limit: float) -> float:
        while self.first_running is None and time.monotonic() - self.started < limit:
            if self.process.poll() is not None:
                raise SystemExit("driver exited early:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.05)
        if self.first_running is None:
            raise SystemExit(f"no run started within {limit:.0f} s")
        return self.first_running


def disk_mb(folder: Path) -> float:
    """Disk blocks under `folder` (hard links counted once), in MB."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        stat = path.lstat()
        if stat.st_ino not in seen:
            seen.add(stat.st_ino)
            total += stat.st_blocks * 512
    return total / 1e6


def reference(folder: Path, inventory: Path) -> float:
    batch = write_batch(folder, "sweep-start-one", 1, 1)
    driver = Driver(batch, folder / "state-one", inventory)
    first = driver.wait_first_running(300)
    driver.process.wait(timeout=300)
    return first


def sweep(folder: Path, inventory: Path, runs: int, watch: float) -> dict[str, float]:
    batch = write_batch(folder, "sweep-start", runs, 3600)
    state = folder / "state-sweep"
    driver = Driver(batch, state, inventory)
    try:
        first = driver.wait_first_running(600)
        time.sleep(max(0.0, watch - (time.monotonic() - driver.started)))
        figures = {
            "first_running_s": first,
            "peak_rss_mb": driver.peak_rss_mb(),
            "records": len(list((state / "runs").glob("*/run.json"))),
            "watched_s": time.monotonic() - driver.started,
        }
    finally:
        driver.process.send_signal(signal.SIGINT)
        driver.process.wait(timeout=300)
        subprocess.run(
            [COSMOS, "kill", "--batch", ids.batch_id("sweep-start"), "--state-dir", str(state),
             "--inventory", str(inventory)],
            capture_output=True, check=False, timeout=600,
        )  # fmt: skip
    figures["state_mb"] = disk_mb(state)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--watch", type=float, default=60.0)
    args = parser.parse_args()
    inventory = lab_control.up(LabPaths.from_env(), hosts=2, gpus=2)
    with tempfile.TemporaryDirectory(prefix="sweep-start-", dir="/var/tmp") as tmp:
        folder = Path(tmp)
        one = reference(folder, inventory)
        many = sweep(folder, inventory, args.runs, args.watch)
    print(f"first running, 1-run batch (reference): {one:6.2f} s")
    print(f"first running, {args.runs:,}-run sweep:      {many['first_running_s']:6.2f} s")
    print(f"ratio sweep / reference:                 {many['first_running_s'] / one:6.2f}")
    print(
        f"after {many['watched_s']:.0f} s: {many['records']:,} of {args.runs:,} runs recorded, "
        f"driver peak RSS {many['peak_rss_mb']:.0f} MB, state folder {many['state_mb']:.0f} MB"
    )
    os.sync()


if __name__ == "__main__":
    main()
