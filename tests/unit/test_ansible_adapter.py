"""The adapter's pure parts: runner events become typed failures and set_stats data, and an
outcome says in one line why a playbook failed. No playbook is run here."""

from __future__ import annotations

from typing import Any

import pytest

from cosmos_driver.ansible_adapter import (
    MESSAGE_LIMIT,
    PlaybookOutcome,
    TaskFailure,
    _EventCollector,
)


def event(kind: str, **event_data: Any) -> dict[str, Any]:
    return {"event": kind, "uuid": "u", "counter": 1, "event_data": event_data}


def collect(*events: dict[str, Any]) -> _EventCollector:
    collector = _EventCollector()
    for item in events:
        assert collector(item) is True  # runner keeps the event (its return means "keep")
    return collector


def test_failed_task_becomes_a_failure_with_host_task_and_whole_message():
    collector = collect(
        event(
            "runner_on_failed",
            host="gpu-1",
            task="Start | Run the job container",
            res={"msg": "Traceback:\n  ...\nimage not found: cosmos:latest\n"},
        )
    )
    assert collector.failures == [
        TaskFailure(
            "gpu-1",
            "Start | Run the job container",
            "Traceback: | ... | image not found: cosmos:latest",
            False,
        )
    ]


def test_unreachable_event_is_marked_unreachable():
    collector = collect(
        event(
            "runner_on_unreachable",
            host="gpu-2",
            task="Stage | Ensure the run directory",
            res={
                "msg": "Failed to connect to the host via ssh: Connection refused",
                "unreachable": True,
            },
        )
    )
    (failure,) = collector.failures
    assert failure.unreachable is True
    assert failure.host == "gpu-2"
    assert failure.message == "Failed to connect to the host via ssh: Connection refused"


@pytest.mark.parametrize("kind", ["runner_on_failed", "runner_on_unreachable"])
def test_ignored_errors_are_not_failures(kind):
    collector = collect(
        event(kind, host="h", task="t", ignore_errors=True, res={"msg": "expected"})
    )
    assert collector.failures == []


def test_ignore_errors_false_still_counts():
    collector = collect(
        event("runner_on_failed", host="h", task="t", ignore_errors=False, res={"msg": "m"})
    )
    assert [f.message for f in collector.failures] == ["m"]


def test_stderr_is_used_when_there_is_no_msg():
    collector = collect(
        event(
            "runner_on_failed",
            host="h",
            task="t",
            res={"stderr": "warning: x\nError: no such container\n", "rc": 1},
        )
    )
    assert collector.failures[0].message == "warning: x | Error: no such container"


def test_long_messages_are_cut_to_the_limit():
    text = "first line | " + "x" * 5000 + " | Host key verification failed."
    collector = collect(event("runner_on_failed", host="h", task="t", res={"msg": text}))
    message = collector.failures[0].message
    assert len(message) == MESSAGE_LIMIT
    assert message.startswith("first line")
    assert message.endswith("Host key verification failed.")


@pytest.mark.parametrize("res", [None, {}, {"msg": ""}, {"msg": "   \n  "}, {"stderr": ""}])
def test_empty_result_says_failed(res):
    collector = collect(event("runner_on_failed", host="h", task="t", res=res))
    assert collector.failures[0].message == "failed"


def test_missing_host_and_task_are_question_marks():
    collector = collect(event("runner_on_failed", res={"msg": "m"}))
    assert collector.failures[0].host == "?"
    assert collector.failures[0].task == "?"


def test_non_text_message_is_turned_into_text():
    collector = collect(event("runner_on_failed", host="h", task="t", res={"msg": ["a", "b"]}))
    assert collector.failures[0].message == "['a', 'b']"


def test_failures_keep_their_order():
    collector = collect(
        event("runner_on_failed", host="a", task="t1", res={"msg": "one"}),
        event("runner_on_ok", host="a", task="t2", res={}),
        event("runner_on_unreachable", host="b", task="t3", res={"msg": "two"}),
    )
    assert [(f.host, f.message, f.unreachable) for f in collector.failures] == [
        ("a", "one", False),
        ("b", "two", True),
    ]


def test_stats_event_gives_the_set_stats_data():
    data = {"finished": True, "exit_code": 3, "oom_killed": False}
    collector = collect(
        event("playbook_on_start"),
        event("runner_on_ok", host="h", task="Wait | Report the exit", res={}),
        event("playbook_on_stats", artifact_data=data, ok={"h": 2}, failures={}),
    )
    assert collector.data == data
    assert collector.data is not data
    assert collector.failures == []


@pytest.mark.parametrize("stats", [{}, {"artifact_data": None}, {"artifact_data": {}}])
def test_stats_without_artifact_data_gives_empty_data(stats):
    collector = collect(event("playbook_on_stats", **stats))
    assert collector.data == {}


def test_events_without_event_data_are_harmless():
    collector = collect({"event": "verbose", "stdout": "hello"}, {"stdout": "no kind"})
    assert collector.failures == []
    assert collector.data == {}


# --- PlaybookOutcome -----------------------------------------------------------------------


def test_successful_outcome_summary_is_ok():
    outcome = PlaybookOutcome("successful", 0, {"container_id": "c"})
    assert outcome.ok
    assert not outcome.unreachable
    assert outcome.summary() == "ok"


@pytest.mark.parametrize(("status", "rc"), [("failed", 2), ("timeout", 254), ("canceled", -9)])
def test_failed_outcome_without_task_failures_names_status_and_rc(status, rc):
    outcome = PlaybookOutcome(status, rc)
    assert not outcome.ok
    assert outcome.summary() == f"playbook {status} (rc {rc})"


def test_failed_outcome_summary_names_the_first_failure():
    outcome = PlaybookOutcome(
        "failed",
        2,
        failures=[
            TaskFailure("gpu-1", "Stage | Upload", "No space left on device", False),
            TaskFailure("gpu-1", "Collect | Fetch", "later", False),
        ],
    )
    assert outcome.summary() == "gpu-1: Stage | Upload: No space left on device"
    assert not outcome.unreachable


def test_outcome_is_unreachable_when_any_failure_is():
    outcome = PlaybookOutcome(
        "failed",
        4,
        failures=[
            TaskFailure("a", "t", "m", False),
            TaskFailure("b", "t", "Connection timed out", True),
        ],
    )
    assert outcome.unreachable


def test_collector_output_feeds_an_outcome():
    collector = collect(
        event(
            "runner_on_unreachable",
            host="gpu-3",
            task="Wait | Wait",
            res={"msg": "Data could not be sent to remote host"},
        ),
        event("playbook_on_stats", artifact_data={"finished": False}),
    )
    outcome = PlaybookOutcome("failed", 4, collector.data, collector.failures)
    assert outcome.unreachable
    assert outcome.data == {"finished": False}
    assert outcome.summary() == "gpu-3: Wait | Wait: Data could not be sent to remote host"


def test_loop_failure_names_the_first_failed_item():
    res = {
        "msg": "One or more items failed",
        "results": [
            {"failed": False, "msg": "fine", "item": "a.mp4"},
            {"failed": True, "msg": "Could not find or access 'b.mp4'", "item": "b.mp4"},
            {"failed": True, "msg": "later item", "item": "c.mp4"},
        ],
    }
    collector = collect(event("runner_on_failed", host="h", task="Stage | Upload", res=res))
    assert collector.failures[0].message == "Could not find or access 'b.mp4'"


def test_blank_trailing_lines_are_skipped():
    collector = collect(
        event("runner_on_failed", host="h", task="t", res={"stderr": "Error: boom\n\n   \n"})
    )
    assert collector.failures[0].message == "Error: boom"


def test_each_task_start_is_reported_with_its_play():
    seen: list[str] = []
    collector = _EventCollector(on_task=seen.append)
    collector({"event": "playbook_on_task_start", "event_data": {"play": "P", "task": "T1"}})
    collector({"event": "runner_on_ok", "event_data": {"play": "P", "task": "T1"}})
    collector({"event": "playbook_on_task_start", "event_data": {"play": "P", "task": "T2"}})
    assert seen == ["P: T1", "P: T2"]


def test_the_recap_keeps_each_hosts_counts():
    collector = collect(
        {
            "event": "playbook_on_stats",
            "event_data": {"ok": {"h1": 5}, "changed": {"h1": 2}, "dark": {"h2": 1}},
        }
    )
    assert collector.recap["h1"]["changed"] == 2
    assert collector.recap["h2"] == {"ok": 0, "changed": 0, "failures": 0, "dark": 1, "skipped": 0}
