"""Tests of the Cosmos Transfer1 simulator scripts, run directly (no container).

The simulator (cosmos_driver/lab/simulator) stands in for the model in the lab image; these
tests check its contract: the real command line and spec rules, progress lines, a real mp4
with the input's frame count, the failure controls, and signal handling through torchrun.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cosmos_driver.batch import Job
from cosmos_driver.profiles import ContainerPaths, transfer1
from tests.fakes.simulator import (
    INPUT_FRAMES,
    TORCHRUN,
    TRANSFER,
    count_frames,
    run_merged,
    sim_env,
)

PROGRESS = re.compile(r"(\d+)/(\d+) \[")
PROGRESS_LINE = re.compile(
    r"^Diffusion sampling: +\d+%\|[# 1-9]{10}\| (\d+)/(\d+) "
    r"\[\d\d:\d\d<(\d\d:\d\d|\?), +[\d.]+(it/s|s/it)\]$"
)


def test_ffmpeg_is_installed():
    """The simulator needs ffmpeg and ffprobe (scripts/bootstrap installs them): say so loudly."""
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "apt-get install -y ffmpeg"


def frame_rate(path: Path) -> str:
    """Return the video stream's r_frame_rate, e.g. ``30/1``."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=r_frame_rate", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


@pytest.fixture(scope="module")
def input_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame 128x72 mp4 made with ffmpeg's test source."""
    path = tmp_path_factory.mktemp("input") / "input.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=128x72:rate=24",
         "-frames:v", str(INPUT_FRAMES), "-c:v", "mpeg4", str(path)],
        check=True,
    )  # fmt: skip
    assert count_frames(path) == INPUT_FRAMES
    return path


class Sim:
    """Runs the simulator in one temporary working directory."""

    def __init__(self, root: Path, video: Path) -> None:
        self.root = root
        self.video = video
        self.out = root / "out"
        (root / "checkpoints").mkdir()

    def spec(self, data: dict[str, Any]) -> Path:
        """Write a spec JSON and return its path."""
        path = self.root / "spec.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def args(self, spec: dict[str, Any], *extra: str) -> list[str]:
        """The usual transfer.py arguments for ``spec``, then ``extra``."""
        return [
            "--checkpoint_dir", str(self.root / "checkpoints"),
            "--controlnet_specs", str(self.spec(spec)),
            "--input_video_path", str(self.video),
            "--video_save_folder", str(self.out),
            *extra,
        ]  # fmt: skip

    def torchrun(
        self, spec: dict[str, Any], *extra: str, nproc: int = 1, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``torchrun --nproc_per_node=N transfer.py ...`` to completion."""
        command = [sys.executable, str(TORCHRUN), f"--nproc_per_node={nproc}", "--nnodes=1"]
        command += [str(TRANSFER), *self.args(spec, "--num_gpus", str(nproc), *extra)]
        return self.run(command, env)

    def python(
        self, spec: dict[str, Any], *extra: str, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python transfer.py ...`` without torchrun."""
        return self.run([sys.executable, str(TRANSFER), *self.args(spec, *extra)], env)

    def run(self, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Run a command with stdout and stderr merged."""
        return run_merged(command, self.root, **env)

    def record(self) -> dict[str, Any]:
        """The simulator's record of what it was given."""
        return json.loads((self.out / ".simulator" / "output.json").read_text(encoding="utf-8"))


@pytest.fixture
def sim(tmp_path: Path, input_video: Path) -> Sim:
    """A simulator runner in a fresh temporary directory."""
    return Sim(tmp_path, input_video)


EDGE_SPEC: dict[str, Any] = {"prompt": "a red car on a wet road", "edge": {"control_weight": 0.5}}


@pytest.fixture(scope="module")
def success(
    tmp_path_factory: pytest.TempPathFactory, input_video: Path
) -> tuple[Sim, subprocess.CompletedProcess[str]]:
    """One successful torchrun run with 7 steps and --fps 30."""
    runner = Sim(tmp_path_factory.mktemp("success"), input_video)
    return runner, runner.torchrun(EDGE_SPEC, "--num_steps", "7", "--fps", "30")


def test_success_writes_video_with_input_frame_count_and_prompt(success) -> None:
    runner, result = success
    assert result.returncode == 0, result.stdout
    video = runner.out / "output.mp4"
    assert count_frames(video) == INPUT_FRAMES
    assert frame_rate(video) == "30/1"
    assert (runner.out / "output.txt").read_text(encoding="utf-8") == EDGE_SPEC["prompt"]
    assert not list(runner.out.glob(".*.partial"))


def test_progress_has_one_line_per_step_in_tqdm_form(success) -> None:
    _, result = success
    steps = [(int(n), int(total)) for n, total in PROGRESS.findall(result.stdout)]
    assert steps == [(n, 7) for n in range(1, 8)]
    lines = [line for line in result.stdout.splitlines() if "Diffusion sampling" in line]
    assert len(lines) == 7
    assert all(PROGRESS_LINE.match(line) for line in lines), lines
    assert lines[-1].startswith("Diffusion sampling: 100%|##########| 7/7 [")


@pytest.mark.parametrize("extra", [["--no_such_option", "1"], ["--num_step", "5"]])
def test_unknown_cli_argument_exits_2(sim: Sim, extra: list[str]) -> None:
    result = sim.python(EDGE_SPEC, *extra)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stdout


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"prompt": "x", "promptt": "typo", "edge": {}}, ["promptt"]),
        ({"edge": {"control_wieght": "high"}}, ["control_wieght", "edge"]),
        ({"edges": {"control_weight": 0.5}}, ["edges"]),
        ({"edge": {"control_weight": 1.5}}, ["control_weight"]),
    ],
)
def test_invalid_spec_exits_1_naming_the_key(sim: Sim, spec: dict, named: list[str]) -> None:
    result = sim.torchrun(spec)
    assert result.returncode == 1
    for word in named:
        assert word in result.stdout
    assert not (sim.out / "output.mp4").exists()


def test_spec_scalar_overrides_cli_unless_literal_flag_given(sim: Sim) -> None:
    spec = {**EDGE_SPEC, "seed": 7, "num_steps": 3, "guidance": 2}
    # "--seed 9" is a literal token, so the CLI wins; "--num_steps=5" is not, so the spec wins.
    result = sim.torchrun(spec, "--seed", "9", "--num_steps=5")
    assert result.returncode == 0, result.stdout
    args = sim.record()["args"]
    assert (args["seed"], args["num_steps"], args["guidance"]) == (9, 3, 2.0)
    assert len(PROGRESS.findall(result.stdout)) == 3


def test_record_shows_devices_and_world_size(sim: Sim) -> None:
    result = sim.torchrun(EDGE_SPEC, nproc=2, CUDA_VISIBLE_DEVICES="3,5")
    assert result.returncode == 0, result.stdout
    record = sim.record()
    assert record["CUDA_VISIBLE_DEVICES"] == "3,5"
    assert (record["WORLD_SIZE"], record["RANK"]) == ("2", "0")
    assert record["spec"] == EDGE_SPEC
    assert record["exit_code"] == 0
    assert record["start"] <= record["end"]


def test_num_gpus_must_match_nproc(sim: Sim) -> None:
    command = [sys.executable, str(TORCHRUN), "--nproc_per_node", "2", str(TRANSFER)]
    result = sim.run([*command, *sim.args(EDGE_SPEC, "--num_gpus", "1")], {})
    assert result.returncode == 1
    assert "WORLD_SIZE" in result.stdout
    assert not (sim.out / "output.mp4").exists()


def test_missing_checkpoint_dir_is_named(sim: Sim) -> None:
    result = sim.torchrun(EDGE_SPEC, "--checkpoint_dir", "no_such_checkpoints")
    assert result.returncode == 1
    assert "no_such_checkpoints" in result.stdout


def test_torchrun_rejects_unknown_option(sim: Sim) -> None:
    command = [sys.executable, str(TORCHRUN), "--nproc-per-node=1", "--bogus", str(TRANSFER)]
    result = sim.run(command, {})
    assert result.returncode == 2
    assert "--bogus" in result.stdout


def test_exit_code_control_fails_after_steps_without_video(sim: Sim) -> None:
    result = sim.torchrun(EDGE_SPEC, "--num_steps", "4", COSMOS_SIM_EXIT_CODE="3")
    assert result.returncode == 3
    assert len(PROGRESS.findall(result.stdout)) == 4
    assert not (sim.out / "output.mp4").exists()
    assert not (sim.out / "output.txt").exists()


def test_environment_wins_over_spec_simulator_controls(sim: Sim) -> None:
    spec = {**EDGE_SPEC, "_simulator": {"exit_code": 4}}
    assert sim.torchrun(spec).returncode == 4
    assert sim.torchrun(spec, COSMOS_SIM_EXIT_CODE="0").returncode == 0


def test_guardrail_block_crashes_like_the_real_one(sim: Sim) -> None:
    result = sim.torchrun(EDGE_SPEC, COSMOS_SIM_GUARDRAIL="1")
    assert result.returncode != 0
    assert "GUARDRAIL BLOCKED" in result.stdout
    assert "TypeError: cannot unpack non-iterable NoneType object" in result.stdout
    assert not (sim.out / "output.mp4").exists()


def test_upsample_prompt_needs_rank_and_prefixes_prompt(sim: Sim) -> None:
    crashed = sim.python(EDGE_SPEC, "--upsample_prompt")
    assert crashed.returncode == 1
    assert "KeyError: 'RANK'" in crashed.stdout
    result = sim.torchrun(EDGE_SPEC, "--upsample_prompt")
    assert result.returncode == 0, result.stdout
    upsampled = "Upsampled: " + EDGE_SPEC["prompt"]
    assert f"Upsampled prompt: {upsampled}" in result.stdout
    assert (sim.out / "output.txt").read_text(encoding="utf-8") == upsampled


def frame_size(path: Path) -> str:
    """Return the video stream's ``WIDTHxHEIGHT``."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height", "-of", "csv=p=0:s=x", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_the_drivers_upscale_spec_makes_a_3x_video_in_10_steps(sim: Sim, tmp_path: Path) -> None:
    """The spec the driver writes for an upscale run, with its parent's video as the input."""
    parent = tmp_path / "parent"
    parent.mkdir()
    shutil.copy(sim.video, parent / "output.mp4")
    job = Job("j", "a red car", {}, {"edge": 0.5})
    spec = transfer1.build_upscale_spec(job, ContainerPaths(parent=str(parent)))
    command = [
        sys.executable, str(TORCHRUN), "--nproc_per_node=1", "--nnodes=1", str(TRANSFER),
        "--checkpoint_dir", str(sim.root / "checkpoints"),
        "--controlnet_specs", str(sim.spec(spec)),
        "--video_save_folder", str(sim.out), "--num_gpus", "1",
    ]  # fmt: skip
    result = sim.run(command, {})
    assert result.returncode == 0, result.stdout
    assert frame_size(sim.out / "output.mp4") == "384x216"  # 128x72 in
    assert count_frames(sim.out / "output.mp4") == INPUT_FRAMES
    assert [int(m[2]) for m in PROGRESS.finditer(result.stdout)][-1] == 10
    record = sim.record()
    assert record["args"]["batch_size"] == 1
    assert record["args"]["input_video_path"] == str(parent / "output.mp4")


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    """Read from ``fd`` until ``needle`` appears; fail after ``timeout`` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"{needle!r} not seen within {timeout}s: {data!r}")
        data += chunk
    return data


def test_sigterm_to_torchrun_stops_a_hung_run_promptly(sim: Sim) -> None:
    command = [sys.executable, str(TORCHRUN), "--nproc_per_node=1", str(TRANSFER)]
    proc = subprocess.Popen(
        [*command, *sim.args(EDGE_SPEC, "--num_gpus", "1")],
        cwd=sim.root,
        env=sim_env(COSMOS_SIM_HANG="1", COSMOS_SIM_DURATION="0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), b"simulated hang", timeout=10)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
        elapsed = time.monotonic() - started
        rest = proc.stdout.read().decode()
    finally:
        proc.kill()
        proc.wait()
    assert code == 143
    assert elapsed < 5
    assert "Received signal 15, exiting" in rest
    assert not (sim.out / "output.mp4").exists()
    assert sim.record()["exit_code"] == 143
