"""Staging (module_utils/cosmos_staging.py, run by cosmos_container's `run` action before it
starts a job): one call makes a job's run directory ready, on real temp folders."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_staging import (
    StagingError,
    stage_run,
)

SPEC = json.dumps({"prompt": "a robot arm", "seed": 5})


def stage(args: dict) -> dict:
    """Stage with the arguments the task passes."""
    return stage_run(**args)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """The remote root of a host that has never run a job."""
    return tmp_path / "remote"


def stage_args(host: Path, spec: str = SPEC, names: list[str] | None = None) -> dict:
    return {
        "run_dir": str(host / "runs" / "run-1"),
        "folders": [str(host / "hf-cache")],
        "spec": spec,
        "inputs_dir": str(host / "inputs"),
        "input_names": names if names is not None else ["aaa.mp4", "bbb.mp4"],
    }


def test_first_stage_creates_the_folders_and_writes_the_spec(tmp_path, host):
    result = stage(stage_args(host))

    run_dir = host / "runs" / "run-1"
    for folder in (host / "hf-cache", host / "inputs", run_dir / "outputs", run_dir / "logs"):
        assert folder.is_dir(), folder
    spec = run_dir / "spec.json"
    assert spec.read_text() == SPEC
    assert spec.stat().st_mode & 0o777 == 0o644
    assert result["changed"] is True
    assert result["spec_path"] == str(spec)
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp left


def test_a_second_stage_with_the_same_spec_changes_nothing(tmp_path, host):
    stage(stage_args(host))
    spec = host / "runs" / "run-1" / "spec.json"
    before = spec.stat()

    result = stage(stage_args(host))

    assert result["changed"] is False
    after = spec.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_changed_spec_is_written_again(tmp_path, host):
    stage(stage_args(host))
    changed_spec = json.dumps({"prompt": "a robot arm", "seed": 6})

    result = stage(stage_args(host, spec=changed_spec))

    assert result["changed"] is True
    assert (host / "runs" / "run-1" / "spec.json").read_text() == changed_spec


def test_missing_inputs_are_the_names_the_store_lacks_in_the_jobs_order(tmp_path, host):
    (host / "inputs").mkdir(parents=True)
    (host / "inputs" / "bbb.mp4").write_bytes(b"already uploaded")
    (host / "inputs" / "ccc.mp4").mkdir()  # not a file: still missing

    result = stage(stage_args(host, names=["ddd.mp4", "bbb.mp4", "ccc.mp4"]))

    assert result["missing_inputs"] == ["ddd.mp4", "ccc.mp4"]


def test_a_host_holding_every_input_needs_no_upload(tmp_path, host):
    (host / "inputs").mkdir(parents=True)
    for name in ("aaa.mp4", "bbb.mp4"):
        (host / "inputs" / name).write_bytes(b"video")
    assert stage(stage_args(host))["missing_inputs"] == []
    assert stage(stage_args(host, names=[]))["missing_inputs"] == []


def test_a_new_attempt_drops_the_exit_and_tar_an_earlier_attempt_left(tmp_path, host):
    stage(stage_args(host))
    run_dir = host / "runs" / "run-1"
    (run_dir / "logs" / "container-exit.json").write_text('{"exit_code": 1}')
    (run_dir / "logs" / "container.log").write_text("attempt 1\n")
    (run_dir / "collected.tar").write_bytes(b"tar")

    result = stage(stage_args(host))

    assert result["changed"] is True
    assert not (run_dir / "logs" / "container-exit.json").exists()
    assert not (run_dir / "collected.tar").exists()
    assert (run_dir / "logs" / "container.log").exists()  # replaced by the next collect


def test_a_new_attempt_starts_with_an_empty_outputs_folder(tmp_path, host):
    stage(stage_args(host))
    outputs = host / "runs" / "run-1" / "outputs"
    (outputs / "output.mp4").write_bytes(b"attempt 1")

    result = stage(stage_args(host))

    assert result["changed"] is True
    assert outputs.is_dir()
    assert list(outputs.iterdir()) == []


def test_staging_removes_other_runs_collect_tars_once_they_are_old(tmp_path, host):
    runs = host / "runs"
    old_run, fresh_run = runs / "run-old", runs / "run-fresh"
    for run in (old_run, fresh_run):
        (run / "outputs").mkdir(parents=True)
        (run / "outputs" / "output.mp4").write_bytes(b"video")
        (run / "collected.tar").write_bytes(b"tar")
    hour_ago = time.time() - 3600
    os.utime(old_run / "collected.tar", (hour_ago, hour_ago))

    stage(stage_args(host))

    assert not (old_run / "collected.tar").exists()
    assert (fresh_run / "collected.tar").exists()  # perhaps being fetched right now
    assert (old_run / "outputs" / "output.mp4").exists()  # outputs are never pruned


def test_a_dependent_run_needs_its_parents_outputs_on_the_host(tmp_path, host):
    parent_outputs = host / "runs" / "parent-1" / "outputs"

    with pytest.raises(StagingError, match="run the parent here first"):
        stage({**stage_args(host), "parent_outputs": str(parent_outputs)})

    parent_outputs.mkdir(parents=True)
    result = stage({**stage_args(host), "parent_outputs": str(parent_outputs)})
    assert result["missing_inputs"] == ["aaa.mp4", "bbb.mp4"]
