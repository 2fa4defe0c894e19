"""4K upscale: the batch field, the upscale run's spec and id, the runs a batch plans, what
ends an upscale run whose parent did not succeed, and a re-run that finds its parent done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cosmos_driver.batch import load_batch
from cosmos_driver.batch_runner import BatchRunner, planned_runs
from cosmos_driver.dependent_runs import blocked_by_parent
from cosmos_driver.errors import ValidationError
from cosmos_driver.profiles import ContainerPaths, profile_named
from cosmos_driver.records import Failure, FailureReason, RunRecord, RunState
from cosmos_driver.store import RunStore
from cosmos_driver.upscale import prepare_upscale, upscale_run_id
from tests.fakes.hosts import FakeHosts
from tests.fakes.videos import make_mp4

BATCH = """\
name: up
defaults: {{upscale: true}}
jobs:
  - name: first
    prompt: a red car
    inputs: {{color: c.mp4}}
    controls: {{edge: 0.4}}
    seed: 7
    fps: 16
    num_steps: 30
    guidance: 6
{extra}"""


def load(tmp_path: Path, extra: str = "", header: str = BATCH):
    make_mp4(tmp_path / "c.mp4")
    path = tmp_path / "batch.yaml"
    path.write_text(header.format(extra=extra))
    return load_batch(path)


def problems_of(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load(tmp_path, header=body)
    return [p.replace(f"{tmp_path / 'batch.yaml'}:", "FILE:") for p in caught.value.problems]


# --- the batch field -----------------------------------------------------------------------


def test_upscale_comes_from_defaults_and_a_job_may_turn_it_off(tmp_path):
    batch = load(
        tmp_path,
        "  - {name: second, prompt: p, inputs: {color: c.mp4}, "
        "controls: {vis: 1}, upscale: false}\n",
    )
    assert [(j.name, j.upscale) for j in batch.jobs] == [("first", True), ("second", False)]


def test_upscale_must_be_true_or_false(tmp_path):
    problems = problems_of(
        tmp_path,
        "name: b\njobs:\n  - name: j\n    prompt: p\n    inputs: {{color: c.mp4}}\n"
        "    controls: {{edge: 1}}\n    upscale: yes please\n",
    )
    assert problems == ["FILE:7: jobs[0] (j).upscale: must be true or false, got 'yes please'"]


def test_a_profile_without_an_upscaler_refuses_upscale_with_line_field_and_profile(tmp_path):
    problems = problems_of(
        tmp_path,
        "name: b\ndefaults: {{profile: transfer2.5}}\njobs:\n  - name: j\n    prompt: p\n"
        "    inputs: {{color: c.mp4}}\n    controls: {{edge: 1}}\n    upscale: true\n",
    )
    assert problems == [
        "FILE:8: jobs[0] (j).upscale: profile transfer2.5 has no 4K upscaler; "
        "remove it or use profile transfer1"
    ]


# --- the upscale run -----------------------------------------------------------------------


def test_the_upscale_spec_is_the_upscale_control_on_the_parents_video(tmp_path):
    (job,) = load(tmp_path).jobs
    spec = profile_named("transfer1").build_upscale_spec(job, ContainerPaths())
    assert spec == {
        "prompt": "a red car",
        "input_video_path": "/cosmos/parent/output.mp4",
        "seed": 7,
        "fps": 16,
        "num_steps": 10,
        "batch_size": 1,
        "upscale": {"control_weight": 0.5},
    }
    hints = {"vis", "edge", "depth", "seg", "keypoint", "hdmap", "lidar"}
    assert not hints & set(spec)  # the parent's controls are not run again


def test_prepare_upscale_writes_its_spec_and_names_its_parent(tmp_path):
    (job,) = load(tmp_path).jobs
    store = RunStore(tmp_path / "state")
    run = prepare_upscale(store, "up-1234abcd", "up.first-0000aaaa", job)
    assert run.run_id == upscale_run_id("up.first-0000aaaa") == "up.first-0000aaaa.upscale"
    assert run.parent_id == "up.first-0000aaaa"
    assert run.input_names == {}  # nothing to upload: its input is on the parent's host
    assert run.job.name == "first.upscale" and not run.job.upscale
    assert json.loads(run.spec_path.read_text())["upscale"] == {"control_weight": 0.5}


def test_a_batch_plans_each_upscale_run_after_its_parent(tmp_path):
    batch = load(
        tmp_path,
        "  - {name: second, prompt: p, inputs: {color: c.mp4}, "
        "controls: {vis: 1}, upscale: false}\n",
    )
    first, second = batch.jobs
    planned = [(run_id, job.name, parent) for run_id, job, parent in planned_runs(batch)]
    assert planned == [
        (batch.run_id(first), "first", None),
        (batch.run_id(first) + ".upscale", "first", batch.run_id(first)),
        (batch.run_id(second), "second", None),
    ]


def parent_in(state: RunState, failure: Failure | None = None) -> RunRecord:
    record = RunRecord("p.run", "p", "job")
    record.move_to(state)
    record.failure = failure
    return record


@pytest.mark.parametrize("state", [RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED])
def test_a_parent_that_may_still_succeed_blocks_nothing(state):
    assert blocked_by_parent(parent_in(state), "p.run") is None


def test_a_failed_parent_blocks_with_its_reason():
    failure = Failure(FailureReason.GUARDRAIL_BLOCKED, "the guardrail blocked this prompt")
    verdict = blocked_by_parent(parent_in(RunState.FAILED, failure), "p.run")
    assert verdict.reason is FailureReason.PARENT_FAILED
    assert verdict.detail == (
        "parent run p.run failed (guardrail_blocked: the guardrail blocked this prompt); "
        "not started"
    )


def test_a_cancelled_parent_cancels():
    verdict = blocked_by_parent(parent_in(RunState.CANCELLED), "p.run")
    assert verdict.reason is FailureReason.CANCELLED
    assert "parent run p.run was cancelled" in verdict.detail


# --- a batch run and its re-run --------------------------------------------------------------


class Inventory(FakeHosts):
    inventory = "inventory.yml"


def test_a_rerun_with_the_parent_done_runs_just_the_upscale(tmp_path):
    batch = load(tmp_path)
    store = RunStore(tmp_path / "state")
    fake = Inventory((tmp_path / "c.mp4").read_bytes())
    first = BatchRunner(fake, store, {"h1": 1, "h2": 1}).run(batch)
    parent_id = batch.run_id(batch.jobs[0])
    upscale_id = upscale_run_id(parent_id)
    assert [r.run_id for r in first.records] == [parent_id, upscale_id]
    assert first.ok
    upscale = store.load_run(upscale_id)
    assert (upscale.kind, upscale.parent_run_id) == ("upscale", parent_id)
    assert upscale.host == store.load_run(parent_id).host
    assert store.load_batch(batch.batch_id).run_ids == [parent_id, upscale_id]

    store.update_run(upscale_id, lambda r: r.fail(FailureReason.CONTAINER_EXIT, "exit 1"))
    fake.calls.clear()
    again = BatchRunner(fake, store, {"h1": 1, "h2": 1}).run(batch)

    assert again.skipped == [parent_id]
    assert {c.extravars["cosmos_job_run_id"] for c in fake.calls} == {upscale_id}
    assert store.load_run(upscale_id).state is RunState.SUCCEEDED
