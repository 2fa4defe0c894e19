"""The JSON run store: round trips, atomic writes, errors that name the file, the lock."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
from pathlib import Path

import pytest

from cosmos_driver.errors import StoreError
from cosmos_driver.records import (
    SCHEMA_VERSION,
    BatchRecord,
    Failure,
    FailureReason,
    Note,
    Progress,
    RunRecord,
    RunState,
    Transition,
)
from cosmos_driver.store import RunStore, read_json, write_json_atomic


def failed_record(run_id: str = "demo.job-1-0123abcd") -> RunRecord:
    record = RunRecord(run_id, "demo-89abcdef", "job 1")
    for state in (RunState.PENDING, RunState.STAGING, RunState.RUNNING, RunState.COLLECTING):
        record.move_to(state)
    record.host = "gpu-1"
    record.container_id = "c0ffee"
    record.exit_code = 3
    record.outputs = ["outputs/output.mp4"]
    record.logs = ["logs/ansible.log", "logs/container.log"]
    record.fail(FailureReason.CONTAINER_EXIT, "container exited with code 3", ["a", "b"])
    return record


def stray_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") and p.name != ".lock"]


# --- records -------------------------------------------------------------------------------


def test_move_to_stamps_each_transition_in_order():
    record = RunRecord("r", "b", "j")
    assert record.state is RunState.PENDING
    assert record.history == []
    record.move_to(RunState.PENDING)
    record.move_to(RunState.STAGING)
    assert record.state is RunState.STAGING
    assert [t.state for t in record.history] == [RunState.PENDING, RunState.STAGING]
    assert record.history[0].at <= record.history[1].at
    assert record.history[0].at.endswith("+00:00")


def test_fail_records_reason_detail_tail_and_ends_failed():
    record = failed_record()
    assert record.state is RunState.FAILED
    assert record.failure == Failure(
        FailureReason.CONTAINER_EXIT, "container exited with code 3", ["a", "b"]
    )
    assert record.history[-1].state is RunState.FAILED


def test_fail_with_cancelled_reason_ends_cancelled():
    record = RunRecord("r", "b", "j")
    record.fail(FailureReason.CANCELLED, "stopped by the user")
    assert record.state is RunState.CANCELLED
    assert record.failure.log_tail == []


def test_run_record_json_uses_plain_strings():
    data = json.loads(json.dumps(failed_record().to_json()))
    assert data["state"] == "failed"
    assert data["failure"]["reason"] == "container_exit"
    assert data["history"][0] == {"state": "pending", "at": data["history"][0]["at"]}
    assert data["schema_version"] == SCHEMA_VERSION


# --- round trips ---------------------------------------------------------------------------


def test_run_record_round_trip_with_history_and_failure(tmp_path):
    store = RunStore(tmp_path / "state")
    record = failed_record()
    store.save_run(record)

    loaded = store.load_run(record.run_id)
    assert loaded == record
    assert loaded is not record
    assert loaded.state is RunState.FAILED
    assert len(loaded.history) == 5  # pending, staging, running, collecting, failed
    assert all(isinstance(t, Transition) and isinstance(t.state, RunState) for t in loaded.history)
    assert isinstance(loaded.failure, Failure)
    assert loaded.failure.reason is FailureReason.CONTAINER_EXIT
    assert (tmp_path / "state" / "runs" / record.run_id / "run.json").is_file()


def test_run_record_round_trip_without_failure(tmp_path):
    store = RunStore(tmp_path)
    record = RunRecord("r1", "b", "j")
    record.move_to(RunState.PENDING)
    record.move_to(RunState.SUCCEEDED)
    store.save_run(record)
    assert store.load_run("r1") == record
    assert store.load_run("r1").failure is None


def test_saving_again_replaces_the_record(tmp_path):
    store = RunStore(tmp_path)
    record = RunRecord("r1", "b", "j")
    store.save_run(record)
    record.move_to(RunState.STAGING)
    store.save_run(record)
    assert store.load_run("r1").state is RunState.STAGING
    assert stray_files(tmp_path) == []


def test_batch_record_round_trip(tmp_path):
    store = RunStore(tmp_path)
    batch = BatchRecord("demo-89abcdef", "Demo", "/x/batch.yaml", ["r1", "r2"])
    store.save_batch(batch)
    assert store.load_batch("demo-89abcdef") == batch
    assert (tmp_path / "batches" / "demo-89abcdef.json").is_file()


def test_missing_records_load_as_none(tmp_path):
    store = RunStore(tmp_path)
    assert store.load_run("nope") is None
    assert store.load_batch("nope") is None
    assert store.list_runs() == []


def test_store_paths(tmp_path):
    store = RunStore(tmp_path / "a" / ".." / "state")
    assert store.root == (tmp_path / "state").resolve()
    assert store.run_dir("r") == store.root / "runs" / "r"
    assert store.outputs_dir("r") == store.root / "runs" / "r" / "outputs"
    assert store.logs_dir("r") == store.root / "runs" / "r" / "logs"


# --- atomic writes -------------------------------------------------------------------------


def test_atomic_write_leaves_no_temp_files(tmp_path):
    store = RunStore(tmp_path)
    for index in range(5):
        store.save_run(failed_record(f"run-{index}"))
    store.save_batch(BatchRecord("b", "B", "src", ["run-0"]))
    assert stray_files(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "runs" / "run-0").iterdir()) == ["run.json"]


def test_failed_atomic_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "records" / "r.json"
    write_json_atomic(path, {"version": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"version": 2, "bad": object()})
    assert json.loads(path.read_text()) == {"version": 1}
    assert list(path.parent.iterdir()) == [path]


def test_atomic_write_creates_parents_and_writes_sorted_json(tmp_path):
    path = tmp_path / "deep" / "er" / "x.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert path.read_text().endswith("\n")
    assert path.read_text().index('"a"') < path.read_text().index('"b"')


# --- corrupt and foreign records -------------------------------------------------------------


def test_corrupt_run_json_raises_store_error_naming_the_file(tmp_path):
    store = RunStore(tmp_path)
    store.save_run(failed_record("r1"))
    path = store.run_dir("r1") / "run.json"
    path.write_text('{"run_id": "r1", "state": ', encoding="utf-8")

    with pytest.raises(StoreError) as caught:
        store.load_run("r1")
    assert str(path) in str(caught.value)
    assert "not valid JSON" in str(caught.value)
    with pytest.raises(StoreError, match="not valid JSON"):
        store.list_runs()


def test_other_schema_version_raises_store_error(tmp_path):
    store = RunStore(tmp_path)
    store.save_run(failed_record("r1"))
    path = store.run_dir("r1") / "run.json"
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))

    with pytest.raises(StoreError) as caught:
        store.load_run("r1")
    message = str(caught.value)
    assert str(path) in message
    assert f"schema_version {SCHEMA_VERSION + 1}" in message


def test_record_without_schema_version_raises_store_error(tmp_path):
    path = tmp_path / "batches" / "b.json"
    path.parent.mkdir(parents=True)
    data = BatchRecord("b", "B", "src", []).to_json()
    del data["schema_version"]
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="schema_version None"):
        RunStore(tmp_path).load_batch("b")


@pytest.mark.parametrize("text", ["[]", "null", "3"])
def test_json_that_is_not_an_object_raises_store_error(tmp_path, text):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(StoreError, match=r"x\.json"):
        read_json(path)


# --- listing -------------------------------------------------------------------------------


def test_list_runs_is_sorted_by_run_id(tmp_path):
    store = RunStore(tmp_path)
    for run_id in ("b.two", "c.three", "a.one", "b.one"):
        store.save_run(RunRecord(run_id, "batch", run_id))
    (tmp_path / "runs" / "no-record-yet").mkdir()
    assert [r.run_id for r in store.list_runs()] == ["a.one", "b.one", "b.two", "c.three"]


# --- the lock ------------------------------------------------------------------------------


def _hold_lock(root: str, log: str, held, release) -> None:
    store = RunStore(Path(root))
    with store.locked():
        _append(log, "holder in")
        held.set()
        release.wait(5)
        _append(log, "holder out")


def _take_lock(root: str, log: str, trying, acquired) -> None:
    store = RunStore(Path(root))
    trying.set()
    with store.locked():
        _append(log, "waiter in")
        acquired.set()


def _append(log: str, line: str) -> None:
    with Path(log).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def test_lock_serialises_two_processes(tmp_path):
    context = multiprocessing.get_context("fork")
    root, log = str(tmp_path / "state"), str(tmp_path / "order.log")
    held, release = context.Event(), context.Event()
    trying, acquired = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(root, log, held, release))
    waiter = context.Process(target=_take_lock, args=(root, log, trying, acquired))
    try:
        holder.start()
        assert held.wait(5)
        waiter.start()
        assert trying.wait(5)
        # The waiter must still be outside while the holder keeps the lock.
        assert not acquired.wait(0.3)
        release.set()
        assert acquired.wait(5)
        holder.join(5)
        waiter.join(5)
    finally:
        release.set()
        for process in (holder, waiter):
            if process.is_alive():
                process.kill()
                process.join()
    assert holder.exitcode == 0
    assert waiter.exitcode == 0
    assert Path(log).read_text().splitlines() == ["holder in", "holder out", "waiter in"]


def test_lock_is_released_after_an_exception(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(RuntimeError), store.locked():
        raise RuntimeError("boom")
    context = multiprocessing.get_context("fork")
    trying, acquired = context.Event(), context.Event()
    waiter = context.Process(
        target=_take_lock, args=(str(tmp_path), str(tmp_path / "o.log"), trying, acquired)
    )
    waiter.start()
    try:
        assert acquired.wait(5)
    finally:
        waiter.join(5)
        if waiter.is_alive():
            waiter.kill()
            waiter.join()
    assert waiter.exitcode == 0


# --- update_run ----------------------------------------------------------------------------


def _lock_is_free(root: Path) -> bool:
    """Whether the store's write lock can be taken now (flock is per open file description,
    so a second open of the lock file contends even within this process)."""
    with (root / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_update_run_applies_the_change_under_the_lock_and_returns_the_new_record(tmp_path):
    store = RunStore(tmp_path)
    record = RunRecord("r1", "b", "j")
    record.move_to(RunState.PENDING)
    store.save_run(record)
    seen: list[tuple[RunState, bool]] = []

    def change(current: RunRecord) -> None:
        seen.append((current.state, _lock_is_free(tmp_path)))
        current.move_to(RunState.STAGING)
        current.host = "gpu-1"

    updated = store.update_run("r1", change)

    assert seen == [(RunState.PENDING, False)]
    assert _lock_is_free(tmp_path)
    assert updated.state is RunState.STAGING
    assert updated.host == "gpu-1"
    assert store.load_run("r1") == updated
    assert stray_files(tmp_path) == []


def test_update_run_reads_the_latest_record_not_a_stale_copy(tmp_path):
    store = RunStore(tmp_path)
    stale = RunRecord("r1", "b", "j")
    store.save_run(stale)
    store.update_run("r1", lambda r: r.note("first"))
    store.update_run("r1", lambda r: r.note("second"))
    assert [n.text for n in store.load_run("r1").notes] == ["first", "second"]


def test_update_run_of_a_missing_run_raises_store_error(tmp_path):
    store = RunStore(tmp_path)
    called = []
    with pytest.raises(StoreError, match="no record of run ghost"):
        store.update_run("ghost", called.append)
    assert called == []
    assert not (tmp_path / "runs" / "ghost" / "run.json").exists()


def test_a_failed_change_writes_nothing(tmp_path):
    store = RunStore(tmp_path)
    store.save_run(RunRecord("r1", "b", "j"))

    def broken(record: RunRecord) -> None:
        record.move_to(RunState.STAGING)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.update_run("r1", broken)
    assert store.load_run("r1").state is RunState.PENDING
    assert _lock_is_free(tmp_path)


def test_record_round_trip_keeps_notes_progress_devices_and_container_times(tmp_path):
    store = RunStore(tmp_path)
    record = RunRecord("r1", "b", "j", host="gpu-1")
    record.gpu_devices = ["2", "3"]
    record.container_started_at = "2025-01-02T03:04:05Z"
    record.container_finished_at = "2025-01-02T03:14:05Z"
    record.progress = Progress(12, 35)
    record.note("host unreachable, retrying in 2 s")
    store.save_run(record)

    loaded = store.load_run("r1")
    assert loaded == record
    assert isinstance(loaded.progress, Progress)
    assert len(loaded.notes) == 1
    assert all(isinstance(n, Note) for n in loaded.notes)
    assert loaded.notes[0].text == "host unreachable, retrying in 2 s"
    assert loaded.notes[0].at.endswith("+00:00")


# --- driving and is_driven -----------------------------------------------------------------


def _drive(root: str, batch_id: str, held, release) -> None:
    with RunStore(Path(root)).driving(batch_id):
        held.set()
        release.wait(10)


def _try_to_drive(root: str, batch_id: str, answer) -> None:
    try:
        with RunStore(Path(root)).driving(batch_id):
            answer.put("driving")
    except StoreError as exc:
        answer.put(str(exc))


def test_driving_refuses_a_second_holder_and_is_driven_says_so(tmp_path):
    context = multiprocessing.get_context("fork")
    store = RunStore(tmp_path)
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_drive, args=(str(tmp_path), "b1", held, release))
    assert not store.is_driven("b1")
    holder.start()
    try:
        assert held.wait(5)
        assert store.is_driven("b1")
        assert not store.is_driven("b2")

        answer = context.Queue()
        second = context.Process(target=_try_to_drive, args=(str(tmp_path), "b1", answer))
        second.start()
        message = answer.get(timeout=5)
        second.join(5)
        assert "b1" in message
        assert "already running" in message
        assert "invoke status" in message
        assert "invoke kill" in message

        # In this process too, a second holder is refused while the first holds on.
        with pytest.raises(StoreError, match="already running"), store.driving("b1"):
            pass
        # Another batch is free.
        with store.driving("b2"):
            assert store.is_driven("b2")
    finally:
        release.set()
        holder.join(5)
        if holder.is_alive():
            holder.kill()
            holder.join()
    assert holder.exitcode == 0
    assert not store.is_driven("b1")
    assert not store.is_driven("b2")
    with store.driving("b1"):
        assert store.is_driven("b1")


def test_a_crashed_driver_holds_nothing(tmp_path):
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_drive, args=(str(tmp_path), "b1", held, release))
    holder.start()
    assert held.wait(5)
    holder.kill()
    holder.join()
    store = RunStore(tmp_path)
    assert not store.is_driven("b1")
    with store.driving("b1"):
        pass


# --- finding runs --------------------------------------------------------------------------


@pytest.fixture
def three_runs(tmp_path) -> RunStore:
    store = RunStore(tmp_path)
    for run_id in ("demo.job-1-aaaa1111", "demo.job-1-aaaa2222", "demo.job-2-bbbb3333"):
        store.save_run(RunRecord(run_id, "demo", run_id))
    return store


def test_find_run_id_takes_an_exact_id(three_runs):
    assert three_runs.find_run_id("demo.job-2-bbbb3333") == "demo.job-2-bbbb3333"


def test_find_run_id_takes_a_unique_prefix(three_runs):
    assert three_runs.find_run_id("demo.job-2") == "demo.job-2-bbbb3333"
    assert three_runs.find_run_id("demo.job-1-aaaa2") == "demo.job-1-aaaa2222"


def test_find_run_id_of_an_ambiguous_prefix_names_the_matches(three_runs):
    with pytest.raises(StoreError) as caught:
        three_runs.find_run_id("demo.job-1")
    message = str(caught.value)
    assert "matches 2 runs" in message
    assert "demo.job-1-aaaa1111" in message
    assert "demo.job-1-aaaa2222" in message


def test_find_run_id_of_an_unknown_run_says_how_to_list_them(three_runs, tmp_path):
    with pytest.raises(StoreError, match="no run 'zzz'") as caught:
        three_runs.find_run_id("zzz")
    assert "invoke runs" in str(caught.value)
    with pytest.raises(StoreError, match="no run"):
        RunStore(tmp_path / "empty").find_run_id("demo")


# --- cancel markers ------------------------------------------------------------------------


def test_cancel_markers_are_set_seen_and_cleared(tmp_path):
    store = RunStore(tmp_path)
    assert not store.cancel_requested("r1")
    store.request_cancel("r1")  # works before the run has a folder
    assert store.cancel_requested("r1")
    assert not store.cancel_requested("r2")
    store.request_cancel("r1")
    assert store.cancel_requested("r1")
    store.clear_cancel("r1")
    assert not store.cancel_requested("r1")
    store.clear_cancel("r1")  # clearing twice is fine
    assert not store.cancel_requested("r1")


# --- batches -------------------------------------------------------------------------------


def test_list_batches_is_oldest_first(tmp_path):
    store = RunStore(tmp_path)
    assert store.list_batches() == []
    created = {
        "zeta": "2025-03-01T00:00:00.000+00:00",
        "alpha": "2025-05-01T00:00:00.000+00:00",
        "mid": "2025-04-01T00:00:00.000+00:00",
    }
    for batch_id, at in created.items():
        store.save_batch(BatchRecord(batch_id, batch_id, "src", [], created_at=at))
    store.request_cancel("some-run")  # other files of the state dir are not batches
    with store.driving("alpha"):
        listed = store.list_batches()
    assert [b.batch_id for b in listed] == ["zeta", "mid", "alpha"]
    assert listed[0] == store.load_batch("zeta")
