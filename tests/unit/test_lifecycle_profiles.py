"""A run under each profile: the lifecycle sends that profile's spec and command, and judges
the run by that profile's outputs and guardrail signal (a run known only by its record, by
the profile the record keeps)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cosmos_driver.model import Job
from cosmos_driver.profiles import ContainerPaths, profile_named
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import RunRef
from tests.fakes.adapter import BATCH_ID, HOST, NO_RETRY, RUN_ID, FakeAdapter, run_job


@pytest.fixture
def job(tmp_path: Path) -> Job:
    color = tmp_path / "color.mp4"
    color.write_bytes(b"color video bytes")
    return Job(
        name="job 1",
        prompt="a robot arm",
        inputs={"color": color},
        controls={"edge": 0.6},
        sampling={"seed": 5, "guidance": 4, "canny_threshold": "low"},
        gpus=2,
        profile="transfer2.5",
    )


class NoPromptFile(FakeAdapter):
    """A collect that brings the video back but not the prompt file."""

    def _collect(self, call) -> list[str]:
        names = super()._collect(call)
        (Path(call.extravars["cosmos_job_fetch_dir"]) / "outputs" / "output.txt").unlink()
        return [n for n in names if n != "output.txt"]


def test_transfer2_5_run_sends_its_spec_and_command_and_succeeds(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    record = run_job(store, job, adapter)

    assert record.state is RunState.SUCCEEDED
    launch = adapter.calls[0].extravars
    profile = profile_named("transfer2.5")
    assert launch["cosmos_job_command"] == profile.command(job, {}, ContainerPaths())
    sent = json.loads(Path(launch["cosmos_job_spec_src"]).read_text())
    assert sent["edge"] == {"control_weight": 0.6, "preset_edge_threshold": "low"}
    assert (sent["name"], sent["seed"], sent["guidance"]) == ("output", 5, 4)


def test_transfer2_5_exit_0_without_a_video_is_guardrail_blocked(store, job, mp4):
    lines = ["Guardrail blocked video2world generation.", "Finished: 0 of 1"]
    record = run_job(store, job, FakeAdapter(store, mp4, log_lines=lines, video=False))

    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.GUARDRAIL_BLOCKED
    assert record.failure.log_tail == lines


def test_transfer2_5_without_its_prompt_file_is_output_missing(store, job, mp4):
    record = run_job(store, job, NoPromptFile(store, mp4))

    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.OUTPUT_MISSING
    assert record.failure.detail == "no output.txt was produced"
    assert record.failure.log_tail == ["step 1/2", "step 2/2"]


def test_transfer1_exit_0_without_a_video_stays_output_missing(store, job, mp4):
    transfer1_job = dataclasses.replace(job, profile="transfer1", sampling={"seed": 5})
    record = run_job(store, transfer1_job, FakeAdapter(store, mp4, video=False))

    assert record.failure.reason is FailureReason.OUTPUT_MISSING


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ("transfer2.5", FailureReason.GUARDRAIL_BLOCKED),
        ("transfer1", FailureReason.OUTPUT_MISSING),
    ],
)
def test_a_run_known_by_its_record_is_judged_by_the_profile_it_keeps(
    store, job, mp4, profile, reason
):
    record = RunRecord(RUN_ID, BATCH_ID, job.name, profile=profile)
    record.move_to(RunState.RUNNING)
    store.save_run(record)
    prepare(store, BATCH_ID, RUN_ID, job)
    life = JobLifecycle(FakeAdapter(store, mp4, video=False), store, retry=NO_RETRY)

    ended = life.finish_orphan(RunRef(RUN_ID, BATCH_ID), HOST, exit_code=0)

    assert ended.failure.reason is reason
