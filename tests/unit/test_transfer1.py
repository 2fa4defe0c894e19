"""The Transfer1 profile: the spec JSON carries every parameter the job set, the command line
names none of them (a spec scalar overrides the CLI only when its flag is absent), and nproc
equals --num_gpus equals the job's GPUs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cosmos_driver.batch import CONTROLS, SAMPLING_FIELDS, Job, load_batch
from cosmos_driver.profiles import transfer1
from cosmos_driver.profiles.transfer1 import ContainerPaths, build_spec, command, guardrail_blocked

ALL_SAMPLING = {
    "negative_prompt": "blurry, low quality",
    "num_steps": 12,
    "guidance": 6.5,
    "seed": 4242,
    "sigma_max": 75.5,
    "fps": 16,
    "blur_strength": "very_low",
    "canny_threshold": "high",
}


def make_job(**overrides) -> Job:
    fields = {
        "name": "j",
        "prompt": "a red car in the rain",
        "inputs": {
            "color": Path("/data/color.mp4"),
            "edge": Path("/data/edge.mp4"),
        },
        "controls": {"edge": 0.3, "depth": 0.7},
        "sampling": dict(ALL_SAMPLING),
        "gpus": 1,
    }
    fields.update(overrides)
    return Job(**fields)


NAMES = {"color": "aaaa.mp4", "edge": "bbbb.mp4"}


def test_all_sampling_fields_are_covered_by_the_test_job():
    assert set(ALL_SAMPLING) == set(SAMPLING_FIELDS)


def test_spec_contains_every_sampling_parameter_key_by_key():
    job = make_job()
    spec = build_spec(job, NAMES, ContainerPaths())
    for key, value in job.sampling.items():
        assert key in spec, key
        assert spec[key] == value, key
        assert type(spec[key]) is type(value), key


def test_spec_has_only_the_keys_the_job_set():
    job = make_job(sampling={"seed": 7})
    spec = build_spec(job, NAMES, ContainerPaths())
    assert set(spec) == {"prompt", "input_video_path", "seed", "edge", "depth"}


def test_spec_prompt_and_color_video_live_in_the_container_inputs():
    paths = ContainerPaths(inputs="/in")
    spec = build_spec(make_job(), NAMES, paths)
    assert spec["prompt"] == "a red car in the rain"
    assert spec["input_video_path"] == "/in/aaaa.mp4"


def test_control_hints_carry_weights_and_input_only_when_given():
    spec = build_spec(make_job(), NAMES, ContainerPaths())
    assert spec["edge"] == {"control_weight": 0.3, "input_control": "/cosmos/inputs/bbbb.mp4"}
    assert spec["depth"] == {"control_weight": 0.7}
    for control in set(CONTROLS) - {"edge", "depth"}:
        assert control not in spec


def test_spec_is_json_and_every_hint_is_an_object():
    spec = build_spec(make_job(), NAMES, ContainerPaths())
    assert json.loads(json.dumps(spec)) == spec
    hints = {k for k, v in spec.items() if isinstance(v, dict)}
    assert hints == {"edge", "depth"}
    assert hints <= set(CONTROLS)


def test_spec_from_a_batch_file(tmp_path):
    (tmp_path / "c.mp4").write_bytes(b"c")
    (tmp_path / "s.mp4").write_bytes(b"s")
    batch_file = tmp_path / "b.yaml"
    batch_file.write_text(
        "name: b\n"
        "defaults: {guidance: 3, seed: 9}\n"
        "jobs:\n"
        "  - name: j\n"
        "    prompt: hello\n"
        "    inputs: {color: c.mp4, seg: s.mp4}\n"
        "    controls: {seg: 1, vis: 0.25}\n"
        "    num_steps: 20\n"
    )
    (job,) = load_batch(batch_file).jobs
    spec = build_spec(job, {"color": "c1.mp4", "seg": "s1.mp4"}, ContainerPaths())
    assert {k: spec[k] for k in ("guidance", "seed", "num_steps")} == {
        "guidance": 3,
        "seed": 9,
        "num_steps": 20,
    }
    assert spec["seg"] == {"control_weight": 1.0, "input_control": "/cosmos/inputs/s1.mp4"}
    assert spec["vis"] == {"control_weight": 0.25}


# --- command line --------------------------------------------------------------------------


def value_after(argv: list[str], flag: str) -> str:
    assert argv.count(flag) == 1, (flag, argv)
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_command_uses_one_process_per_gpu(gpus):
    argv = command(make_job(gpus=gpus), {}, ContainerPaths())
    assert argv[0] == "torchrun"
    nproc = [a for a in argv if a.startswith("--nproc_per_node")]
    assert nproc == [f"--nproc_per_node={gpus}"]
    assert value_after(argv, "--num_gpus") == str(gpus)


def test_command_runs_the_transfer_script_with_the_container_paths():
    paths = ContainerPaths(run="/r", inputs="/i", checkpoints="/ck")
    argv = command(make_job(), {}, paths)
    assert transfer1.SCRIPT in argv
    assert all(isinstance(a, str) for a in argv)
    assert argv.index(transfer1.SCRIPT) > argv.index("--node_rank=0")
    assert value_after(argv, "--checkpoint_dir") == "/ck"
    assert value_after(argv, "--controlnet_specs") == "/r/spec.json"
    assert value_after(argv, "--video_save_folder") == "/r/outputs"
    assert value_after(argv, "--video_save_name") == transfer1.OUTPUT_NAME


def test_command_never_names_a_spec_key():
    job = make_job()
    argv = command(job, {}, ContainerPaths())
    spec = build_spec(job, NAMES, ContainerPaths())
    spec_scalars = {k for k, v in spec.items() if not isinstance(v, dict)}
    assert set(SAMPLING_FIELDS) <= spec_scalars
    for key in spec_scalars | set(SAMPLING_FIELDS):
        for token in argv:
            assert token != f"--{key}", key
            assert not token.startswith(f"--{key}="), key


def test_command_does_not_depend_on_sampling_values():
    bare = command(make_job(sampling={}), {}, ContainerPaths())
    full = command(make_job(), {}, ContainerPaths())
    assert bare == full
    for value in ALL_SAMPLING.values():
        assert str(value) not in full


# --- guardrail -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        ["loading", "[rank0]: GUARDRAIL BLOCKED: unsafe prompt", "Traceback ..."],
        ["Guardrail blocked the video"],
        ["x"] * 50 + ["... Guardrail blocked ..."],
    ],
)
def test_guardrail_blocked_finds_the_markers(lines):
    assert guardrail_blocked(lines)


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["loading guardrail models", "guardrail passed", "done"],
        ["GUARDRAIL", "BLOCKED"],
    ],
)
def test_guardrail_blocked_ignores_other_lines(lines):
    assert not guardrail_blocked(lines)
