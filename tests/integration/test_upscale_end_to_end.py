"""4K upscale in the lab: a job with `upscale: true` yields its output and, from a second run
that the engine started on the same host from the output already there, its 3x video; a job
whose run fails leaves its upscale run failed and never started."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import yaml

from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import ROOT, infer_json


def frame_size(path: Path) -> tuple[int, int]:
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok, f"{path} does not decode"
    height, width = frame.shape[:2]
    return width, height


def remote_roots(inventory: Path) -> dict[str, Path]:
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]["cosmos_lab"]["hosts"]
    return {name: Path(values["cosmos_remote_root"]) for name, values in hosts.items()}


def started_on(lab, run_id: str, since: float) -> list[str]:
    """The cosmos.host label of every container the engine started for `run_id`."""
    lines = lab.engine(
        "events", "--since", str(int(since)), "--until", str(int(time.time()) + 1),
        "--filter", "type=container", "--filter", "event=start",
        "--filter", f"label=cosmos.run_id={run_id}", "--format", "{{json .Actor.Attributes}}",
    ).splitlines()  # fmt: skip
    return [json.loads(line)["cosmos.host"] for line in lines if line.strip()]


def test_upscale_runs_after_its_parent_on_its_host_from_the_output_there(lab, tmp_path):
    batch = write_batch(
        tmp_path,
        "upscale-lab",
        [
            job("scene", upscale=True),
            job(
                "broken",
                upscale=True,
                env={"COSMOS_SIM_DURATION": "1", "COSMOS_SIM_EXIT_CODE": "3"},
            ),
        ],
    )
    state = tmp_path / "state"
    since = time.time() - 1
    result = infer_json(batch, state, lab.inventory)

    assert result.code == 1, result.stderr  # the broken job fails the batch
    runs = {run["run_id"]: run for run in result.json()["runs"]}
    by_job = {(r["job_name"], r["kind"]): r for r in runs.values()}
    scene, upscale = by_job[("scene", "inference")], by_job[("scene.upscale", "upscale")]
    assert scene["state"] == "succeeded", scene["failure"]
    assert upscale["state"] == "succeeded", upscale["failure"]
    assert upscale["run_id"] == scene["run_id"] + ".upscale"
    assert upscale["parent_run_id"] == scene["run_id"]
    assert upscale["host"] == scene["host"]
    assert started_on(lab, upscale["run_id"], since) == [scene["host"]]

    parent_video = state / "runs" / scene["run_id"] / "outputs" / "output.mp4"
    upscaled = state / "runs" / upscale["run_id"] / "outputs" / "output.mp4"
    width, height = frame_size(ROOT / "examples/inputs/street-color.mp4")
    assert frame_size(parent_video) == (width, height)
    assert frame_size(upscaled) == (3 * width, 3 * height)

    # Its input was the parent's output on that host, mounted: no upload, no other host.
    roots = remote_roots(lab.inventory)
    spec = json.loads((roots[scene["host"]] / "runs" / upscale["run_id"] / "spec.json").read_text())
    assert spec["input_video_path"] == "/cosmos/parent/output.mp4"
    assert spec["upscale"] == {"control_weight": 0.5}
    assert (spec["num_steps"], spec["batch_size"]) == (10, 1)
    others = [root for host, root in roots.items() if host != scene["host"]]
    assert len(others) == 1
    assert not any((root / "runs" / upscale["run_id"]).exists() for root in others)

    broken = by_job[("broken", "inference")]
    not_started = by_job[("broken.upscale", "upscale")]
    assert broken["failure"]["reason"] == "container_exit"
    assert not_started["state"] == "failed"
    assert not_started["failure"]["reason"] == "parent_failed"
    assert broken["run_id"] in not_started["failure"]["detail"]
    assert not_started["host"] is None and not_started["container_id"] is None
    assert lab.containers(f"cosmos.batch_id={result.json()['batch_id']}") == []


def test_an_enhanced_and_upscaled_job_yields_both_outputs_and_its_enhanced_prompt(lab, tmp_path):
    batch = write_batch(tmp_path, "enhance-upscale", [job("scene", enhance=True, upscale=True)])
    state = tmp_path / "state"
    result = infer_json(batch, state, lab.inventory)

    assert result.code == 0, result.stderr
    by_kind = {run["kind"]: run for run in result.json()["runs"]}
    scene, upscale = by_kind["inference"], by_kind["upscale"]
    assert scene["state"] == upscale["state"] == "succeeded"
    assert scene["enhanced_prompt"]
    assert scene["enhanced_prompt"] != scene["prompt"]
    assert upscale["host"] == scene["host"]
    width, height = frame_size(ROOT / "examples/inputs/street-color.mp4")
    outputs = state / "runs"
    assert frame_size(outputs / scene["run_id"] / "outputs/output.mp4") == (width, height)
    upscaled = outputs / upscale["run_id"] / "outputs/output.mp4"
    assert frame_size(upscaled) == (3 * width, 3 * height)
