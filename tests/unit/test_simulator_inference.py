"""The Transfer2.5 simulator entry point (examples/inference.py in the lab image), run directly
through the torchrun shim: the real argv and spec keys, unknown ones refused, the outputs
<name>.mp4/.txt/.json, and the guardrail's exit 0 without a video."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.simulator import INPUT_FRAMES, TORCHRUN, count_frames, run_merged

INFERENCE = TORCHRUN.parent / "inference.py"


def run(folder: Path, spec: dict[str, Any], *extra: str, **env: str):
    """torchrun --nproc_per_node=2 examples/inference.py -i spec.json -o out ..."""
    (folder / "spec.json").write_text(json.dumps(spec))
    command = [sys.executable, str(TORCHRUN), "--nproc_per_node=2", str(INFERENCE)]
    command += ["-i", "spec.json", "-o", "out", *extra]
    return run_merged(command, folder, **env)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A run folder holding a 12-frame input video as in.mp4 (spec paths are relative to it)."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=128x72:rate=24",
         "-frames:v", str(INPUT_FRAMES), "-c:v", "mpeg4", str(tmp_path / "in.mp4")],
        check=True,
    )  # fmt: skip
    return tmp_path


SPEC: dict[str, Any] = {
    "name": "car",
    "prompt": "a red car on a wet road",
    "video_path": "in.mp4",
    "negative_prompt": "blurry",
    "seed": 7,
    "guidance": 5,
    "num_steps": 4,
    "sigma_max": 80.5,
    "edge": {"control_weight": 0.4, "control_path": "in.mp4", "preset_edge_threshold": "low"},
    "vis": {"control_weight": 0.2, "preset_blur_strength": "high"},
}


def test_success_writes_video_prompt_and_resolved_sample(folder):
    done = run(folder, SPEC)

    assert done.returncode == 0, done.stdout
    out = folder / "out"
    assert count_frames(out / "car.mp4") == INPUT_FRAMES
    assert (out / "car.txt").read_text() == SPEC["prompt"]
    resolved = json.loads((out / "car.json").read_text())
    for key, value in SPEC.items():
        if key not in ("video_path", "edge"):
            assert resolved[key] == value, key
    assert resolved["edge"]["control_path"] == str(folder / "in.mp4")
    assert resolved["video_path"] == str(folder / "in.mp4")
    assert "4/4 [" in done.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"fps": 24}, "fps: extra inputs are not permitted"),
        ({"edge": {"control_weight": 0.4, "threshold": 1}}, "edge.threshold"),
        ({"keypoint": {"control_weight": 0.4}}, "keypoint: extra inputs"),
        ({"guidance": 7.5}, "guidance: expected int"),
        ({"guidance": 8}, "guidance: must be an integer from 0 to 7"),
        ({"video_path": "missing.mp4"}, "video_path: no such file"),
    ],
)
def test_bad_spec_exits_1_naming_the_key(folder, change, named):
    done = run(folder, {**SPEC, **change})

    assert done.returncode == 1
    assert named in done.stdout
    assert not (folder / "out" / "car.mp4").exists()


def test_unknown_argument_exits_2(folder):
    done = run(folder, SPEC, "--num_steps", "3")

    assert done.returncode == 2
    assert "unrecognized arguments: --num_steps" in done.stdout


def test_guardrail_block_exits_0_without_a_video(folder):
    done = run(folder, SPEC, COSMOS_SIM_GUARDRAIL="1")

    assert done.returncode == 0, done.stdout
    assert "Guardrail blocked" in done.stdout
    assert not (folder / "out" / "car.mp4").exists()


def test_guardrail_block_without_keep_going_exits_1(folder):
    done = run(folder, SPEC, "--no-keep-going", COSMOS_SIM_GUARDRAIL="1")

    assert done.returncode == 1
