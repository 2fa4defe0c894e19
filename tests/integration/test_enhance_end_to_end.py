"""Prompt enhancement in the lab: a batch job with `enhance: true` runs Transfer1's upsampler
in the pipeline and keeps the final prompt in its record; `cosmos enhance` runs the
standalone upsampler as a run of its own and prints what it made of the prompt."""

from __future__ import annotations

from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import ROOT, cosmos, infer_json

# The simulator's upsampler prefixes the prompt (lab/simulator/README.md).
UPSAMPLED = "Upsampled: "


def test_a_job_with_enhance_ends_with_the_enhanced_prompt_in_its_record(lab, tmp_path):
    batch = write_batch(tmp_path, "enhance-job", [job("scene", enhance=True)])
    state = tmp_path / "state"
    result = infer_json(batch, state, lab.inventory)

    assert result.code == 0, result.stderr
    (run,) = result.json()["runs"]
    assert run["state"] == "succeeded", run["failure"]
    assert run["prompt"] == "a test scene for scene"
    assert run["enhanced_prompt"] == UPSAMPLED + "a test scene for scene"
    prompt_file = state / "runs" / run["run_id"] / "outputs" / "output.txt"
    assert prompt_file.read_text() == run["enhanced_prompt"]

    shown = cosmos("show", "--run", run["run_id"], "--state-dir", str(state))
    assert f"enhanced prompt: {UPSAMPLED}a test scene for scene" in shown.stdout


def test_cosmos_enhance_prints_the_enhanced_prompt(lab, tmp_path):
    state = tmp_path / "state"
    video = ROOT / "examples" / "inputs" / "street-color.mp4"
    args = ["--prompt", "a wet street at dusk", "--video", str(video), "--state-dir", str(state)]
    args += ["--inventory", str(lab.inventory), "--host", "lab-2"]

    result = cosmos("enhance", *args, "--json")

    assert result.code == 0, result.stderr
    record = result.json()
    assert (record["state"], record["kind"], record["host"]) == ("succeeded", "enhance", "lab-2")
    assert record["enhanced_prompt"] == UPSAMPLED + "a wet street at dusk"
    assert lab.containers(f"cosmos.batch_id={record['batch_id']}") == []

    again = cosmos("enhance", *args)  # the same question: the recorded answer, not a new run
    assert (again.code, again.stdout) == (0, f"{UPSAMPLED}a wet street at dusk\n")
