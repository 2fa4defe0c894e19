"""Watching a batch through the installed `cosmos` command: `logs --follow` started with the
batch, then `status` and `runs` once it has ended."""

from __future__ import annotations

import subprocess

from cosmos_driver.lab.processes import wait_until
from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import COSMOS, ROOT, cosmos, infer_json, records, start_infer


def follow(run_prefix: str, state, inventory) -> subprocess.Popen:
    return subprocess.Popen(
        [COSMOS, "logs", "--run", run_prefix, "--follow", "--state-dir", str(state),
         "--inventory", str(inventory)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_logs_follow_of_a_queued_run_waits_then_prints_the_whole_log_once(lab, tmp_path):
    """Five jobs on four GPU slots: the last one waits in the queue while the others run."""
    jobs = [job(f"j{i}", env={"COSMOS_SIM_DURATION": "6"}) for i in range(5)]
    batch = write_batch(tmp_path, "watched", jobs)
    state = tmp_path / "state"
    infer = start_infer(batch, state, lab.inventory)
    try:
        assert wait_until(lambda: len(records(state)) == 5, 60, 0.1), "no run records"
        (run_id,) = [r for r in records(state) if ".j4-" in r]
        follower = follow("watched.j4", state, lab.inventory)  # a prefix of the run id
        followed, errors = follower.communicate(timeout=180)
        infer.wait(180)
    finally:
        infer.kill()

    assert follower.returncode == 0, errors
    assert records(state)[run_id]["state"] == "succeeded"
    full_log = (state / "runs" / run_id / "logs" / "container.log").read_text()
    assert "Diffusion sampling" in full_log
    assert followed == full_log  # followed as it grew, then the rest: every line, once


def test_status_and_runs_show_a_finished_batch(lab, tmp_path):
    batch = write_batch(tmp_path, "shown", [job("ok"), job("bad", env={
        "COSMOS_SIM_EXIT_CODE": "3", "COSMOS_SIM_DURATION": "1"})])  # fmt: skip
    state = tmp_path / "state"
    done = infer_json(batch, state, lab.inventory)
    assert done.code == 1, done.stderr
    batch_id = done.json()["batch_id"]

    status = cosmos("status", "--state-dir", str(state), "--json")
    assert status.code == 0, status.stderr
    assert status.json()["batch_id"] == batch_id
    states = {r["job_name"]: r["state"] for r in status.json()["runs"]}
    assert states == {"ok": "succeeded", "bad": "failed"}

    table = cosmos("status", "--batch", batch_id[:8], "--state-dir", str(state))
    assert table.code == 0, table.stderr
    assert "container_exit" in table.stdout
    assert "1 failed, 1 succeeded" in table.stdout

    failed = cosmos("runs", "--status", "failed", "--state-dir", str(state), "--json")
    assert [r["job_name"] for r in failed.json()] == ["bad"]

    wrong = cosmos("runs", "--status", "done", "--state-dir", str(state))
    assert wrong.code == 2
    assert "use one of" in wrong.stderr
