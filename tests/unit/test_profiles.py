"""Model profiles: the registry, and for each profile a spec that carries every parameter the
batch set, key by key, under that model's names; Transfer2.5's command line, outputs,
guardrail signal and the batch fields it refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cosmos_driver.batch import SAMPLING_FIELDS, load_batch
from cosmos_driver.errors import ValidationError
from cosmos_driver.profiles import NAMES, ContainerPaths, RunEnd, profile_named, transfer2_5

PATHS = ContainerPaths()

# Every field a batch can set, with values unlike any default.
FULL_JOB = """
name: every field
defaults:
  profile: {profile}
jobs:
  - name: all
    prompt: a red car in the rain
    inputs: {{color: c.mp4, edge: e.mp4, depth: d.mp4}}
    controls: {{edge: 0.3, depth: 0.7, vis: 0.2}}
    negative_prompt: blurry, low quality
    num_steps: 12
    guidance: 6
    seed: 4242
    sigma_max: 75.5
    blur_strength: very_low
    canny_threshold: high
{extra}"""
NAMES_ON_HOST = {"color": "cc.mp4", "edge": "ee.mp4", "depth": "dd.mp4"}


def full_job(tmp_path: Path, profile: str, extra: str = ""):
    for name in ("c.mp4", "e.mp4", "d.mp4"):
        (tmp_path / name).write_bytes(b"x")
    path = tmp_path / "batch.yaml"
    path.write_text(FULL_JOB.format(profile=profile, extra=extra))
    (job,) = load_batch(path).jobs
    return job


def problems_of(tmp_path: Path, body: str) -> list[str]:
    (tmp_path / "c.mp4").write_bytes(b"x")
    path = tmp_path / "b.yaml"
    path.write_text(body)
    with pytest.raises(ValidationError) as caught:
        load_batch(path)
    return [p.replace(f"{path}:", "FILE:") for p in caught.value.problems]


# --- registry ------------------------------------------------------------------------------


def test_registry_has_both_profiles_and_names_them_when_asked_for_another():
    assert NAMES == ("transfer1", "transfer2.5")
    assert profile_named("transfer2.5").name == "transfer2.5"
    with pytest.raises(
        ValidationError, match=re.escape("'transfer3'; valid: transfer1, transfer2.5")
    ):
        profile_named("transfer3")


# --- the spec, key by key --------------------------------------------------------------------


def test_transfer1_spec_carries_every_parameter_the_batch_set(tmp_path):
    job = full_job(tmp_path, "transfer1", "    fps: 16\n")
    spec = profile_named("transfer1").build_spec(job, NAMES_ON_HOST, PATHS)
    assert spec == {
        "prompt": "a red car in the rain",
        "input_video_path": "/cosmos/inputs/cc.mp4",
        "negative_prompt": "blurry, low quality",
        "num_steps": 12,
        "guidance": 6,
        "seed": 4242,
        "sigma_max": 75.5,
        "fps": 16,
        "blur_strength": "very_low",
        "canny_threshold": "high",
        "edge": {"control_weight": 0.3, "input_control": "/cosmos/inputs/ee.mp4"},
        "depth": {"control_weight": 0.7, "input_control": "/cosmos/inputs/dd.mp4"},
        "vis": {"control_weight": 0.2},
    }


def test_transfer2_5_spec_carries_every_parameter_the_batch_set_under_its_names(tmp_path):
    job = full_job(tmp_path, "transfer2.5")
    spec = profile_named("transfer2.5").build_spec(job, NAMES_ON_HOST, PATHS)
    assert spec == {
        "name": "output",
        "prompt": "a red car in the rain",
        "video_path": "/cosmos/inputs/cc.mp4",
        "negative_prompt": "blurry, low quality",
        "num_steps": 12,
        "guidance": 6,
        "seed": 4242,
        "sigma_max": 75.5,
        "edge": {
            "control_weight": 0.3,
            "control_path": "/cosmos/inputs/ee.mp4",
            "preset_edge_threshold": "high",
        },
        "depth": {"control_weight": 0.7, "control_path": "/cosmos/inputs/dd.mp4"},
        "vis": {"control_weight": 0.2, "preset_blur_strength": "very_low"},
    }
    assert type(spec["guidance"]) is int
    assert json.loads(json.dumps(spec)) == spec


def test_transfer2_5_places_or_refuses_every_sampling_field():
    """A new batch field must be given a Transfer2.5 key or a refusal, never forgotten."""
    placed = {*transfer2_5.TOP_LEVEL, *transfer2_5.IN_CONTROL, *transfer2_5.UNSUPPORTED}
    assert placed == set(SAMPLING_FIELDS)


def test_transfer2_5_spec_has_only_what_the_job_set(tmp_path):
    (tmp_path / "c.mp4").write_bytes(b"x")
    path = tmp_path / "b.yaml"
    path.write_text(
        "name: b\njobs:\n  - name: j\n    profile: transfer2.5\n    prompt: p\n"
        "    inputs: {color: c.mp4}\n    controls: {seg: 1}\n"
    )
    (job,) = load_batch(path).jobs
    spec = profile_named("transfer2.5").build_spec(job, {"color": "x.mp4"}, PATHS)
    assert spec == {
        "name": "output",
        "prompt": "p",
        "video_path": "/cosmos/inputs/x.mp4",
        "seg": {"control_weight": 1.0},
    }


def test_transfer2_5_spec_refuses_a_job_that_skipped_validation(tmp_path):
    job = full_job(tmp_path, "transfer1", "    fps: 16\n")
    with pytest.raises(
        ValidationError, match=re.escape("job all: fps: profile transfer2.5 has no fps")
    ):
        profile_named("transfer2.5").build_spec(job, NAMES_ON_HOST, PATHS)


# --- command line, outputs, guardrail ------------------------------------------------------


@pytest.mark.parametrize("gpus", [1, 4])
def test_transfer2_5_command_is_torchrun_of_examples_inference(tmp_path, gpus):
    job = full_job(tmp_path, "transfer2.5", f"    gpus: {gpus}\n")
    argv = profile_named("transfer2.5").command(job, {}, ContainerPaths(run="/r"))
    assert argv == [
        "torchrun",
        f"--nproc_per_node={gpus}",
        "examples/inference.py",
        "-i",
        "/r/spec.json",
        "-o",
        "/r/outputs",
    ]


def test_expected_outputs_video_first():
    assert profile_named("transfer1").outputs == ("output.mp4",)
    assert profile_named("transfer2.5").outputs == ("output.mp4", "output.txt")
    assert profile_named("transfer2.5").video == "output.mp4"


@pytest.mark.parametrize(
    ("end", "blocked"),
    [
        (RunEnd(0, [], frozenset({"output.txt", "output.json"})), True),
        (RunEnd(0, [], frozenset()), True),
        (RunEnd(0, [], frozenset({"output.mp4", "output.txt"})), False),
        (RunEnd(1, [], frozenset()), False),  # a crash, not a guardrail
        (RunEnd(0, [], None), False),  # the collect failed: nothing is known of the outputs
        (RunEnd(1, ["GUARDRAIL BLOCKED: unsafe"], frozenset()), False),  # Transfer1's signal
    ],
)
def test_transfer2_5_guardrail_is_exit_0_without_a_video(end, blocked):
    assert profile_named("transfer2.5").guardrail_blocked(end) is blocked


def test_transfer1_guardrail_is_its_log_marker():
    transfer1 = profile_named("transfer1")
    assert transfer1.guardrail_blocked(RunEnd(1, ["x", "GUARDRAIL BLOCKED: unsafe"], None))
    assert not transfer1.guardrail_blocked(RunEnd(0, ["fine"], frozenset()))


# --- validation ------------------------------------------------------------------------------


def test_unknown_profile_suggests_the_close_one(tmp_path):
    problems = problems_of(
        tmp_path,
        "name: b\njobs:\n  - name: j\n    profile: transfer2\n    prompt: p\n"
        "    inputs: {color: c.mp4}\n    controls: {edge: 1}\n",
    )
    assert problems == [
        "FILE:4: jobs[0] (j).profile: unknown model profile 'transfer2'; "
        "did you mean 'transfer2.5'?"
    ]


def test_transfer2_5_refuses_what_it_cannot_express_naming_line_field_and_profile(tmp_path):
    problems = problems_of(
        tmp_path,
        "name: b\n"
        "defaults: {profile: transfer2.5}\n"
        "jobs:\n"
        "  - name: j\n"
        "    prompt: p\n"
        "    inputs: {color: c.mp4}\n"
        "    controls: {depth: 1, keypoint: 0.5}\n"
        "    fps: 16\n"
        "    guidance: 7.5\n"
        "    blur_strength: low\n"
        "    canny_threshold: high\n",
    )
    assert problems == [
        "FILE:8: jobs[0] (j).fps: profile transfer2.5 has no fps setting; "
        "remove it or use profile transfer1",
        "FILE:7: jobs[0] (j).controls.keypoint: profile transfer2.5 has no keypoint control "
        "(it has edge, vis, depth, seg); remove it or use profile transfer1",
        "FILE:10: jobs[0] (j).blur_strength: profile transfer2.5 sets blur_strength as "
        "vis.preset_blur_strength: add controls.vis or remove blur_strength",
        "FILE:11: jobs[0] (j).canny_threshold: profile transfer2.5 sets canny_threshold as "
        "edge.preset_edge_threshold: add controls.edge or remove canny_threshold",
        "FILE:9: jobs[0] (j).guidance: profile transfer2.5 takes a whole number from 0 to 7, "
        "got 7.5",
    ]


@pytest.mark.parametrize("guidance", [0, 3, 7])
def test_transfer2_5_takes_whole_guidance_from_0_to_7(tmp_path, guidance):
    (tmp_path / "c.mp4").write_bytes(b"x")
    path = tmp_path / "b.yaml"
    path.write_text(
        "name: b\njobs:\n  - name: j\n    profile: transfer2.5\n    prompt: p\n"
        f"    inputs: {{color: c.mp4}}\n    controls: {{edge: 1}}\n    guidance: {guidance}\n"
    )
    (job,) = load_batch(path).jobs
    assert job.sampling["guidance"] == guidance


@pytest.mark.parametrize("guidance", ["8", "3.0", "0.5"])
def test_transfer2_5_refuses_other_guidance(tmp_path, guidance):
    problems = problems_of(
        tmp_path,
        "name: b\njobs:\n  - name: j\n    profile: transfer2.5\n    prompt: p\n"
        f"    inputs: {{color: c.mp4}}\n    controls: {{edge: 1}}\n    guidance: {guidance}\n",
    )
    assert problems == [
        f"FILE:8: jobs[0] (j).guidance: profile transfer2.5 takes a whole number from 0 to 7, "
        f"got {guidance}"
    ]


def test_a_wrong_type_is_reported_once_not_again_by_the_profile(tmp_path):
    problems = problems_of(
        tmp_path,
        "name: b\njobs:\n  - name: j\n    profile: transfer2.5\n    prompt: p\n"
        "    inputs: {color: c.mp4}\n    controls: {edge: 1}\n    guidance: 25\n",
    )
    assert problems == ["FILE:8: jobs[0] (j).guidance: must be from 0 to 20, got 25"]


def test_a_sweep_under_transfer2_5_checks_each_value(tmp_path):
    problems = problems_of(
        tmp_path,
        "name: b\njobs:\n  - name: j\n    profile: transfer2.5\n    prompt: p\n"
        "    inputs: {color: c.mp4}\n    controls: {edge: 1}\n    guidance: [3, 5.5]\n",
    )
    assert problems == [
        "FILE:8: jobs[0] (j.guidance-5.5).guidance: profile transfer2.5 takes a whole number "
        "from 0 to 7, got 5.5"
    ]


def test_profile_defaults_to_transfer1_and_a_job_may_override_the_defaults(tmp_path):
    (tmp_path / "c.mp4").write_bytes(b"x")
    path = tmp_path / "b.yaml"
    path.write_text(
        "name: b\n"
        "defaults: {prompt: p, inputs: {color: c.mp4}, controls: {edge: 1}}\n"
        "jobs:\n  - name: one\n  - name: two\n    profile: transfer2.5\n"
    )
    assert [job.profile for job in load_batch(path).jobs] == ["transfer1", "transfer2.5"]
