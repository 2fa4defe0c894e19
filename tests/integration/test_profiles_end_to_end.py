"""The same batch, profile aside, under transfer1 and transfer2.5 in the lab: the real
playbooks, ansible-runner, sshd, dockerd, and the simulator's entry point for each model."""

from __future__ import annotations

import json

import cv2
import pytest

from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import ROOT, infer_json

# Parameters both profiles can express; each must reach the model.
SAMPLING = {
    "negative_prompt": "blurry, low quality",
    "num_steps": 6,
    "guidance": 4,
    "seed": 4242,
    "sigma_max": 75.5,
    "blur_strength": "low",
    "canny_threshold": "high",
}


def frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


@pytest.mark.parametrize("profile", ["transfer1", "transfer2.5"])
def test_same_batch_runs_under_each_profile(lab, tmp_path, profile):
    controls = {"edge": 0.5, "vis": 0.25}
    batch = write_batch(
        tmp_path,
        f"profiles-{profile}",
        [
            job("scene", controls=controls, **SAMPLING),
            job(
                "blocked",
                controls=controls,
                env={"COSMOS_SIM_DURATION": "1", "COSMOS_SIM_GUARDRAIL": "1"},
            ),
        ],
        defaults={"profile": profile},
    )
    state = tmp_path / "state"
    result = infer_json(batch, state, lab.inventory)

    assert result.code == 1, result.stderr  # the blocked job fails the batch
    runs = {run["job_name"]: run for run in result.json()["runs"]}
    assert {run["profile"] for run in runs.values()} == {profile}

    scene = runs["scene"]
    assert scene["state"] == "succeeded", scene["failure"]
    outputs = state / "runs" / scene["run_id"] / "outputs"
    video = frame_count(outputs / "output.mp4")
    assert video == frame_count(ROOT / "examples/inputs/street-color.mp4")
    assert (outputs / "output.txt").read_text().strip() == "a test scene for scene"

    blocked = runs["blocked"]
    assert blocked["state"] == "failed"
    assert blocked["failure"]["reason"] == "guardrail_blocked"
    assert blocked["failure"]["log_tail"]
    assert lab.containers(f"cosmos.batch_id={result.json()['batch_id']}") == []


def test_transfer2_5_model_receives_every_parameter_the_batch_set(lab, tmp_path):
    """The simulator writes the sample it resolved (<name>.json, as the real one does)."""
    batch = write_batch(
        tmp_path,
        "profiles-reach",
        [job("scene", controls={"edge": 0.5, "vis": 0.25}, **SAMPLING)],
        defaults={"profile": "transfer2.5"},
    )
    state = tmp_path / "state"
    result = infer_json(batch, state, lab.inventory)

    assert result.code == 0, result.stderr
    (run,) = result.json()["runs"]
    resolved = json.loads((state / "runs" / run["run_id"] / "outputs/output.json").read_text())
    top_level = ("negative_prompt", "num_steps", "guidance", "seed", "sigma_max")
    assert {key: resolved[key] for key in top_level} == {key: SAMPLING[key] for key in top_level}
    assert resolved["vis"] == {"control_weight": 0.25, "preset_blur_strength": "low"}
    assert resolved["edge"] == {"control_weight": 0.5, "preset_edge_threshold": "high"}
    assert resolved["prompt"] == "a test scene for scene"
