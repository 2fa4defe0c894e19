"""A batch file is untrusted: a template planted in any channel arrives in the container as
written and runs nothing on the driver's machine (docs/security.md). Channels that may not
hold such text (env names, job names) are refused with a named error before anything runs."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import ROOT, cosmos, infer_json

ARITHMETIC = "{{ 7*7 }}"


def planted(marker) -> str:
    """A Jinja2 expression that creates `marker` if anything ever renders it."""
    return f"{{{{ lookup('pipe', 'touch {marker}') }}}}"


def simulator_record(lab, run_id: str) -> dict:
    """What the simulator saw of a run: its spec, argv and whole environment."""
    (path,) = lab.paths.root.glob(f"host-*/remote/runs/{run_id}/outputs/.simulator/output.json")
    return json.loads(path.read_text().splitlines()[-1])


def test_templates_in_env_prompts_and_input_paths_arrive_literally(lab, tmp_path):
    marker = tmp_path / "pwned"
    hostile = planted(marker)
    folder = tmp_path / "batch"
    odd_input = f"inputs/{hostile} {ARITHMETIC}/street.mp4"
    batch = write_batch(
        folder,
        "untrusted",
        [
            job(
                "texts",
                prompt=f"{hostile} {ARITHMETIC}",
                negative_prompt=f"{ARITHMETIC} {hostile}",
                env={"COSMOS_SIM_DURATION": "1", "PLANTED": hostile, "MATHS": ARITHMETIC},
            ),
            job("path", inputs={"color": odd_input}),
        ],
    )
    (folder / odd_input).parent.mkdir(parents=True)
    shutil.copy(ROOT / "examples/inputs/street-color.mp4", folder / odd_input)

    result = infer_json(batch, tmp_path / "state", lab.inventory)

    assert result.code == 0, result.stderr
    assert not marker.exists(), "a template from the batch file was rendered"
    runs = {r["job_name"]: r for r in result.json()["runs"]}
    texts = simulator_record(lab, runs["texts"]["run_id"])
    assert texts["spec"]["prompt"] == f"{hostile} {ARITHMETIC}"
    assert texts["spec"]["negative_prompt"] == f"{ARITHMETIC} {hostile}"
    assert (texts["environ"]["PLANTED"], texts["environ"]["MATHS"]) == (hostile, ARITHMETIC)
    assert runs["path"]["state"] == "succeeded", "the input was copied from its literal path"


def test_a_template_in_an_enhanced_prompt_reaches_the_command_line_as_written(lab, tmp_path):
    marker = tmp_path / "pwned"
    prompt = f"{planted(marker)} {ARITHMETIC}"
    batch = write_batch(tmp_path, "untrusted-enhance", [job("up", prompt=prompt, enhance=True)])

    result = infer_json(batch, tmp_path / "state", lab.inventory)

    assert result.code == 0, result.stderr
    assert not marker.exists()
    (run,) = result.json()["runs"]
    assert run["enhanced_prompt"].endswith(prompt)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("env", {ARITHMETIC: "x"}, "is not a variable name"),
        ("env", {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, "CUDA_VISIBLE_DEVICES"),
        ("env", {"NVIDIA_VISIBLE_DEVICES": "all"}, "NVIDIA_VISIBLE_DEVICES"),
        ("name", ARITHMETIC, "must start with a letter or digit"),
    ],
)
def test_templates_where_only_names_belong_are_refused_before_anything_runs(
    lab, tmp_path, field, value, problem
):
    marker = tmp_path / "pwned"
    hostile = {**job("refused"), field: value}
    if field == "env":
        hostile["env"] = {**value, "X": planted(marker)}
    batch = write_batch(tmp_path, "refused", [hostile])
    state = tmp_path / "state"

    result = infer_json(batch, state, lab.inventory)

    assert result.code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {batch}:") and problem in line
    assert not marker.exists()
    assert not state.exists(), "nothing is written before the batch is valid"


def test_planted_templates_in_the_enhance_command_are_literal(lab, tmp_path):
    marker = tmp_path / "pwned"
    prompt = planted(marker)
    video = ROOT / "examples" / "inputs" / "street-color.mp4"
    args = ["--prompt", prompt, "--video", str(video), "--state-dir", str(tmp_path / "state")]

    result = cosmos("enhance", *args, "--inventory", str(lab.inventory), "--json")

    assert result.code == 0, result.stderr
    assert result.json()["enhanced_prompt"].endswith(prompt)
    assert not marker.exists()
