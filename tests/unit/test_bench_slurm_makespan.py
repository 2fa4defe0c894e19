"""The Slurm makespan bench's figures from run records: it needs the lab's Slurm to be
measured, but how it reads records and counts is checked here."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from bench.slurm_makespan import (
    common_ideal,
    container_span,
    figures,
    peak_at_once,
    slots_of,
    submitted_at,
)
from cosmos_driver.records import Note, RunRecord, RunState, Transition

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return moment(seconds).isoformat(timespec="milliseconds")


def moment(seconds: float) -> dt.datetime:
    return START + dt.timedelta(seconds=seconds)


def engine(seconds: float) -> str:
    """The engine's form: nanoseconds and a Z."""
    return moment(seconds).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def a_record(ended: float, submitted: float | None = None) -> RunRecord:
    record = RunRecord("r", "b", "j", state=RunState.SUCCEEDED)
    record.history = [
        Transition(RunState.PENDING, at(0)),
        Transition(RunState.SUCCEEDED, at(ended)),
    ]
    if submitted is not None:
        record.notes = [Note(at(submitted), "submitted to Slurm as 7_3")]
    return record


def test_a_span_is_the_records_engine_times_else_the_saved_exits():
    record = a_record(5)
    saved = {"started_at": engine(1), "finished_at": engine(3.5)}
    assert container_span(record, saved) == (moment(1), moment(3.5))
    record.container_started_at, record.container_finished_at = engine(2), engine(4)
    assert container_span(record, saved) == (moment(2), moment(4))
    assert container_span(a_record(5), None) is None
    assert container_span(a_record(5), {"started_at": engine(1)}) is None


def test_submitted_is_the_slurm_note_and_none_on_ssh():
    assert submitted_at(a_record(5, submitted=2)) == moment(2)
    assert submitted_at(a_record(5)) is None


def test_figures_count_from_the_commands_start():
    records = [a_record(6, submitted=1), a_record(9, submitted=4)]
    spans = [(moment(2), moment(4)), (moment(5), moment(7))]
    row = figures(records, spans, slots=2, start=START, wall=10)
    assert row["succeeded"] == 2
    assert (row["first_start_s"], row["submitted_s"], row["last_start_s"]) == (2, 4, 5)
    assert (row["makespan_s"], row["ideal_s"], row["makespan_over_ideal"]) == (9, 2, 4.5)
    assert row["overhead_per_run_s"] == pytest.approx((9 * 2 - 4) / 2)
    ssh = figures([a_record(6), a_record(9)], spans, slots=2, start=START, wall=10)
    assert ssh["submitted_s"] == ssh["last_start_s"] == 5  # SSH: the last container start


def test_slots_are_the_login_hosts_max_parallel_else_the_gpus(tmp_path):
    ssh = tmp_path / "ssh.yml"
    hosts = {"a": {"cosmos_gpu_count": 2}, "b": {"cosmos_gpu_count": 3}}
    ssh.write_text(yaml.safe_dump({"all": {"children": {"lab": {"hosts": hosts}}}}))
    assert slots_of(ssh) == 5
    login = tmp_path / "slurm.yml"
    values = {"cosmos_backend": "slurm", "cosmos_gpu_count": 2, "cosmos_slurm_max_parallel": 4}
    login.write_text(yaml.safe_dump({"all": {"hosts": {"login": values}}}))
    assert slots_of(login) == 4


def test_peak_counts_containers_at_once_and_an_end_frees_its_slot_at_once():
    assert peak_at_once([(moment(0), moment(2)), (moment(2), moment(4))]) == 1
    assert (
        peak_at_once([(moment(0), moment(3)), (moment(1), moment(4)), (moment(2), moment(5))]) == 3
    )


def test_the_common_ideal_is_at_the_lower_mean_container_time():
    rows = {
        "ssh": {"mean_container_s": 8.0, "runs": 200, "slots": 4},
        "slurm": {"mean_container_s": 2.0, "runs": 200, "slots": 4},
    }
    assert common_ideal(rows) == 100
