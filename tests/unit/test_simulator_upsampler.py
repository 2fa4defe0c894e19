"""The prompt upsampler simulator entry point (the standalone pipeline in the lab image), run
through the torchrun shim as `invoke enhance` launches it: the real arguments, unknown ones
refused, RANK required, and its one result line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.fakes.simulator import TORCHRUN, run_merged

UPSAMPLER = TORCHRUN.parent / "upsampler_pipeline.py"


def run(folder: Path, *args: str, torchrun: bool = True, **env: str):
    launcher = [sys.executable, str(TORCHRUN), "--nproc_per_node=1"] if torchrun else []
    command = [*(launcher or [sys.executable]), str(UPSAMPLER), *args]
    return run_merged(command, folder, **{"COSMOS_SIM_DURATION": "0", **env})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "in.mp4").write_bytes(b"a video")
    return tmp_path


def test_prints_the_upsampled_prompt_and_writes_nothing(folder):
    done = run(folder, "--prompt=a red car", "--input_video", "in.mp4", "--checkpoint_dir", "ck")

    assert done.returncode == 0, done.stdout
    assert "Upsampled prompt: Upsampled: a red car\n" in done.stdout
    assert "ck/nvidia/Cosmos-UpsamplePrompt1-12B-Transfer" in done.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["in.mp4"]


def test_without_torchrun_it_fails_on_rank(folder):
    done = run(folder, "--prompt", "p", "--input_video", "in.mp4", torchrun=False)

    assert done.returncode == 1
    assert "KeyError: 'RANK'" in done.stdout
    assert "Upsampled prompt" not in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--prompt", "p", "--input_video", "in.mp4", "--upsample_prompt"],
        ["--prompt", "p", "--input_vid", "in.mp4"],
        ["--prompt", "p"],
    ],
)
def test_a_bad_command_line_exits_2(folder, args):
    done = run(folder, *args)

    assert done.returncode == 2
    assert "usage:" in done.stdout


def test_a_missing_video_crashes_like_the_real_one(folder):
    done = run(folder, "--prompt", "p", "--input_video", "gone.mp4")

    assert done.returncode == 1
    assert "FileNotFoundError" in done.stdout


def test_a_simulated_failure_exits_with_its_code(folder):
    done = run(folder, "--prompt", "p", "--input_video", "in.mp4", COSMOS_SIM_EXIT_CODE="3")

    assert done.returncode == 3
    assert "Upsampled prompt" not in done.stdout
