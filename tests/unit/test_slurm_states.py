"""Slurm's state text, as squeue, sacct and the jobcomp file write it, read as run states."""

from __future__ import annotations

import pytest

from cosmos_driver.records import FailureReason, RunState
from cosmos_driver.slurm_states import jobs_by_name, read_state, task_states

F = FailureReason


@pytest.mark.parametrize(
    ("text", "state", "reason", "words"),
    [
        ("PENDING", RunState.STAGING, None, "waiting in Slurm: PENDING"),
        ("PD", RunState.STAGING, None, "waiting in Slurm: PENDING"),
        ("PENDING JobArrayTaskLimit", RunState.STAGING, None, "JobArrayTaskLimit"),
        ("CONFIGURING", RunState.STAGING, None, "CONFIGURING"),
        ("REQUEUED", RunState.STAGING, None, "REQUEUED"),
        ("RUNNING", RunState.RUNNING, None, "running in Slurm: RUNNING"),
        ("R", RunState.RUNNING, None, "RUNNING"),
        ("COMPLETING", RunState.RUNNING, None, "COMPLETING"),
        ("SUSPENDED", RunState.RUNNING, None, "SUSPENDED"),
        ("COMPLETED", RunState.SUCCEEDED, None, "completed"),
        ("CD", RunState.SUCCEEDED, None, "completed"),
        ("FAILED", RunState.FAILED, F.CONTAINER_EXIT, "the Slurm job failed (FAILED)"),
        ("TIMEOUT", RunState.FAILED, F.TIMEOUT, "time limit (TIMEOUT)"),
        ("TO", RunState.FAILED, F.TIMEOUT, "TIMEOUT"),
        ("DEADLINE", RunState.FAILED, F.TIMEOUT, "deadline"),
        ("CANCELLED", RunState.CANCELLED, F.CANCELLED, "Slurm cancelled the job (CANCELLED)"),
        ("CANCELLED by 0", RunState.CANCELLED, F.CANCELLED, "(CANCELLED by 0)"),
        ("CANCELLED+", RunState.CANCELLED, F.CANCELLED, "(CANCELLED)"),
        ("CA", RunState.CANCELLED, F.CANCELLED, "CANCELLED"),
        ("NODE_FAIL", RunState.FAILED, F.HOST_UNREACHABLE, "its Slurm node failed"),
        ("NF", RunState.FAILED, F.HOST_UNREACHABLE, "NODE_FAIL"),
        ("BOOT_FAIL", RunState.FAILED, F.HOST_UNREACHABLE, "boot"),
        ("PREEMPTED", RunState.FAILED, F.HOST_UNREACHABLE, "preempted"),
        ("OUT_OF_MEMORY", RunState.FAILED, F.CONTAINER_EXIT, "out of memory (OUT_OF_MEMORY)"),
        ("OOM", RunState.FAILED, F.CONTAINER_EXIT, "out of memory"),
        ("SPECIAL_EXIT", RunState.FAILED, F.CONTAINER_EXIT, "failed"),
        ("REVOKED", RunState.CANCELLED, F.CANCELLED, "revoked"),
        (" running ", RunState.RUNNING, None, "RUNNING"),
    ],
)
def test_each_slurm_state_reads_as_a_run_state(text, state, reason, words):
    read = read_state(text)
    assert (read.state, read.reason) == (state, reason)
    assert words in read.detail
    assert read.ended is (state in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED))


@pytest.mark.parametrize("text", ["WEIRD_STATE", ""])
def test_an_unknown_state_fails_the_run_and_names_what_slurm_said(text):
    read = read_state(text)
    assert (read.state, read.reason) == (RunState.FAILED, F.PLAYBOOK_FAILED)
    assert repr(text) in read.detail
    assert read.ended


JOBCOMP = (
    "JobId=7 UserId=root(0) Name=cosmos-b JobState={state} Partition=lab "
    "ArrayJobId={job} ArrayTaskId={task} DerivedExitCode=0:0 ExitCode=0:0 "
)


def test_task_states_merge_squeue_rows_with_ended_lines_of_this_job_only():
    queued = ["0|RUNNING|None", "1|PENDING|JobArrayTaskLimit", "N/A|PENDING|x", "2|RUNNING|None"]
    ended = [
        JOBCOMP.format(state="COMPLETED", job="5", task="2"),
        JOBCOMP.format(state="FAILED", job="4", task="0"),  # another job's task 0
        JOBCOMP.format(state="CANCELLED", job="5", task="3"),
        "5_4|TIMEOUT",  # sacct's form
        "6_4|FAILED",
        "garbage",
    ]
    states = task_states("5", queued, ended)
    assert {task: s.slurm for task, s in states.items()} == {
        0: "RUNNING", 1: "PENDING", 2: "COMPLETED", 3: "CANCELLED", 4: "TIMEOUT",
    }  # fmt: skip
    assert "JobArrayTaskLimit" in states[1].detail
    assert states[0].detail == "running in Slurm: RUNNING"


def test_jobs_by_name_read_squeue_jobcomp_and_sacct_rows_of_the_names_asked_only():
    rows = [
        "120|cosmos-b-1.1gpu.aaaa",  # squeue %F|%j, one row per task
        "120|cosmos-b-1.1gpu.aaaa",
        "JobId=131 UserId=u(1) Name=cosmos-b-1.2gpu.bbbb JobState=COMPLETED ArrayJobId=130 "
        "ArrayTaskId=1",
        "140_3|cosmos-b-1.1gpu.cccc",  # sacct JobID|JobName
        "150_[0-3%4]|cosmos-b-1.1gpu.dddd",  # sacct's pending array
        "160|someone-else",
    ]
    names = frozenset(
        {"cosmos-b-1.1gpu.aaaa", "cosmos-b-1.2gpu.bbbb", "cosmos-b-1.1gpu.cccc",
         "cosmos-b-1.1gpu.dddd", "cosmos-b-1.1gpu.eeee"}
    )  # fmt: skip
    assert jobs_by_name(rows, names) == {
        "cosmos-b-1.1gpu.aaaa": "120",
        "cosmos-b-1.2gpu.bbbb": "130",
        "cosmos-b-1.1gpu.cccc": "140",
        "cosmos-b-1.1gpu.dddd": "150",
    }
