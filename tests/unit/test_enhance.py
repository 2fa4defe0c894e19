"""Prompt enhancement: `enhance: true` on a batch job (Transfer1's flags, refused by
Transfer2.5, the final prompt kept in the run record) and `invoke enhance` (a one-job batch
of the upsampler profile whose result is the `Upsampled prompt: …` line of its log)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from cosmos_driver.batch import load_batch
from cosmos_driver.batch_runner import BatchRunner
from cosmos_driver.enhance import enhance_batch
from cosmos_driver.errors import ConfigurationError, ExecutionError, ValidationError
from cosmos_driver.inventory import Inventory
from cosmos_driver.model import Job
from cosmos_driver.profiles import NAMES, UPSAMPLER, ContainerPaths, profile_named, upsampler
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.tasks.enhance import _report
from cosmos_driver.tasks.jobs import _chosen_hosts
from cosmos_driver.tasks.runs import _print_record
from tests.fakes.adapter import FakeAdapter, run_job

PATHS = ContainerPaths()
ENHANCE_FLAGS = ["--upsample_prompt", "--offload_prompt_upsampler"]
BATCH = """\
name: b
defaults: {{profile: {profile}}}
jobs:
  - name: j
    prompt: a red car
    inputs: {{color: c.mp4}}
    controls: {{edge: 0.5}}
    enhance: {enhance}
"""


def write(tmp_path: Path, profile: str = "transfer1", enhance: str = "true") -> Path:
    (tmp_path / "c.mp4").write_bytes(b"x")
    path = tmp_path / "b.yaml"
    path.write_text(BATCH.format(profile=profile, enhance=enhance))
    return path


def problems_of(tmp_path: Path, profile: str, enhance: str) -> list[str]:
    path = write(tmp_path, profile, enhance)
    with pytest.raises(ValidationError) as caught:
        load_batch(path)
    return [p.replace(f"{path}:", "FILE:") for p in caught.value.problems]


@pytest.fixture
def job(tmp_path: Path) -> Job:
    color = tmp_path / "color.mp4"
    color.write_bytes(b"color video bytes")
    return Job("j", "a red car", {"color": color}, {"edge": 0.5}, enhance=True)


# --- the batch field -----------------------------------------------------------------------


def test_enhance_is_read_from_the_batch_and_defaults_to_off(tmp_path):
    assert load_batch(write(tmp_path)).jobs[0].enhance is True
    assert Job("j", "p", {}, {}).enhance is False


def test_enhance_must_be_true_or_false(tmp_path):
    assert problems_of(tmp_path, "transfer1", "'yes'") == [
        "FILE:8: jobs[0] (j).enhance: must be true or false, got 'yes'"
    ]


def test_transfer2_5_refuses_enhance_naming_line_field_and_profile(tmp_path):
    assert problems_of(tmp_path, "transfer2.5", "true") == [
        "FILE:8: jobs[0] (j).enhance: profile transfer2.5 has no prompt upsampler; "
        "remove it or use profile transfer1"
    ]


def test_transfer2_5_takes_enhance_false(tmp_path):
    assert load_batch(write(tmp_path, "transfer2.5", "false")).jobs[0].enhance is False


def test_transfer2_5_spec_refuses_an_enhancing_job_that_skipped_validation(job):
    with pytest.raises(ValidationError, match=re.escape("job j: enhance: profile transfer2.5")):
        profile_named("transfer2.5").build_spec(
            dataclasses.replace(job, profile="transfer2.5"), {"color": "c.mp4"}, PATHS
        )


# --- Transfer1's command line and the run record -------------------------------------------


def test_transfer1_adds_the_upsampler_flags_only_when_the_job_enhances(job):
    command = profile_named("transfer1").command
    enhanced = command(job, {}, PATHS)
    plain = command(dataclasses.replace(job, enhance=False), {}, PATHS)
    assert enhanced == plain + ENHANCE_FLAGS
    assert not set(ENHANCE_FLAGS) & set(plain)


def test_an_enhancing_run_keeps_the_prompt_it_ended_with(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    record = run_job(store, job, adapter)

    assert record.state is RunState.SUCCEEDED
    assert record.enhanced_prompt == "the final prompt"  # outputs/output.txt, stripped
    assert adapter.calls[0].extravars["cosmos_job_command"][-2:] == ENHANCE_FLAGS


def test_a_run_that_does_not_enhance_keeps_no_enhanced_prompt(store, job, mp4):
    record = run_job(store, dataclasses.replace(job, enhance=False), FakeAdapter(store, mp4))

    assert record.state is RunState.SUCCEEDED
    assert record.enhanced_prompt is None


class NoPromptFile(FakeAdapter):
    def _collect(self, call) -> list[str]:
        names = super()._collect(call)
        (Path(call.extravars["cosmos_job_fetch_dir"]) / "outputs" / "output.txt").unlink()
        return [n for n in names if n != "output.txt"]


def test_an_enhancing_run_without_its_prompt_file_is_output_missing(store, job, mp4):
    record = run_job(store, job, NoPromptFile(store, mp4))

    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.OUTPUT_MISSING
    assert record.failure.detail == "no enhanced prompt was produced"
    assert record.enhanced_prompt is None


def test_records_without_the_new_fields_still_load():
    data = RunRecord("r", "b", "j").to_json()
    del data["prompt"], data["enhanced_prompt"]
    assert RunRecord.from_json(data).enhanced_prompt is None


# --- the upsampler profile (`invoke enhance`) ----------------------------------------------


def test_the_upsampler_is_a_profile_no_batch_file_can_name():
    assert UPSAMPLER not in NAMES
    assert profile_named(UPSAMPLER).outputs == ()


def test_the_upsampler_command_is_torchrun_of_the_standalone_pipeline(job):
    argv = profile_named(UPSAMPLER).command(job, {"color": "ab12.mp4"}, PATHS)
    assert argv == [
        "torchrun",
        "--nproc_per_node=1",
        "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py",
        "--prompt=a red car",
        "--input_video",
        "/cosmos/inputs/ab12.mp4",
        "--checkpoint_dir",
        "/cosmos/checkpoints",
    ]


@pytest.mark.parametrize(
    ("lines", "prompt"),
    [
        (["loading", "Upsampled prompt: A red car, at dusk.  "], "A red car, at dusk."),
        (["[11-24 05:00:00|INFO|x.py:9:main] Upsampled prompt: first", "Upsampled prompt: last"],
         "last"),
        (["loading", "Upsampled prompt: ", "done"], None),
        ([], None),
    ],
)  # fmt: skip
def test_the_upsampler_result_is_the_last_upsampled_prompt_line(lines, prompt):
    assert upsampler.final_prompt(lines, Path("/nowhere")) == prompt


def upsampler_job(job: Job) -> Job:
    return dataclasses.replace(job, controls={}, profile=UPSAMPLER)


def test_an_upsampler_run_keeps_the_prompt_from_its_log(store, job, mp4):
    lines = ["Loading prompt upsampler", "Upsampled prompt: a red car at dusk, rain"]
    adapter = FakeAdapter(store, mp4, log_lines=lines, video=False)
    record = run_job(store, upsampler_job(job), adapter)

    assert record.state is RunState.SUCCEEDED, record.failure
    assert record.enhanced_prompt == "a red car at dusk, rain"
    sent = json.loads(Path(adapter.calls[0].extravars["cosmos_job_spec_src"]).read_text())
    assert sent["prompt"] == "a red car"


def test_an_upsampler_run_without_its_result_line_is_output_missing(store, job, mp4):
    adapter = FakeAdapter(store, mp4, log_lines=["Loading prompt upsampler"], video=False)
    record = run_job(store, upsampler_job(job), adapter)

    assert record.failure.reason is FailureReason.OUTPUT_MISSING
    assert record.failure.log_tail == ["Loading prompt upsampler"]


# --- the one-job batch and the task's report -------------------------------------------------


def test_enhance_batch_is_one_upsampler_job_named_by_prompt_and_video(tmp_path, mp4):
    video = mp4(tmp_path / "scene.mp4")
    batch = enhance_batch("a red car", video)
    (job,) = batch.jobs
    assert (job.profile, job.enhance, job.prompt, job.gpus) == (UPSAMPLER, True, "a red car", 1)
    assert job.inputs == {"color": video.resolve()}
    assert enhance_batch("a red car", video).batch_id == batch.batch_id
    assert enhance_batch("a blue car", video).batch_id != batch.batch_id
    other = mp4(tmp_path / "other" / "scene.mp4", frames=9)
    assert enhance_batch("a red car", other).batch_id != batch.batch_id


def test_enhance_batch_refuses_an_empty_prompt_or_a_missing_video(tmp_path, mp4):
    with pytest.raises(ValidationError, match="--video: no such file"):
        enhance_batch("a red car", tmp_path / "missing.mp4")
    with pytest.raises(ValidationError, match="--prompt"):
        enhance_batch("  ", mp4(tmp_path / "scene.mp4"))


def test_an_enhance_batch_runs_through_the_batch_runner_into_an_enhance_record(
    tmp_path, store, mp4
):
    batch = enhance_batch("a red car", mp4(tmp_path / "scene.mp4"))
    lines = ["Upsampled prompt: a red car, wet asphalt"]
    result = BatchRunner(
        FakeAdapter(store, mp4, log_lines=lines, video=False), store, {"h": 1}
    ).run(batch)

    (record,) = result.records
    assert record.state is RunState.SUCCEEDED, record.failure
    assert (record.kind, record.profile) == ("enhance", UPSAMPLER)
    assert (record.prompt, record.enhanced_prompt) == ("a red car", "a red car, wet asphalt")


def ended(state: RunState, enhanced: str | None = None) -> RunRecord:
    record = RunRecord("enhance.enhance-1", "enhance-1", "enhance", prompt="a red car")
    record.enhanced_prompt = enhanced
    if state is RunState.FAILED:
        record.fail(FailureReason.OUTPUT_MISSING, "no enhanced prompt was produced")
    else:
        record.move_to(state)
    return record


def test_the_report_prints_the_enhanced_prompt_alone(capsys):
    _report(ended(RunState.SUCCEEDED, "a red car [at dusk]"), as_json=False)
    assert capsys.readouterr().out == "a red car [at dusk]\n"


def test_the_json_report_is_the_run_record(capsys):
    _report(ended(RunState.SUCCEEDED, "a red car at dusk"), as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert (data["prompt"], data["enhanced_prompt"]) == ("a red car", "a red car at dusk")


def test_a_failed_enhance_run_is_an_error_naming_why(capsys):
    with pytest.raises(ExecutionError, match="output_missing: no enhanced prompt was produced"):
        _report(ended(RunState.FAILED), as_json=False)
    assert capsys.readouterr().out == ""


def test_show_prints_both_prompts(capsys, tmp_path):
    _print_record(ended(RunState.SUCCEEDED, "a red car at dusk"), tmp_path)
    out = capsys.readouterr().out
    assert "prompt: a red car\n" in out
    assert "enhanced prompt: a red car at dusk\n" in out


def test_host_picks_one_inventory_host_and_an_unknown_one_is_an_error(tmp_path):
    inventory = Inventory(tmp_path / "hosts.yml", {"gpu-a": 2, "gpu-b": 1})
    assert _chosen_hosts(inventory, None) == {"gpu-a": 2, "gpu-b": 1}
    assert _chosen_hosts(inventory, "gpu-b") == {"gpu-b": 1}
    with pytest.raises(ConfigurationError, match=r"'gpu-c' is not in .*; it has gpu-a, gpu-b"):
        _chosen_hosts(inventory, "gpu-c")
