"""A batch across the lab's hosts and GPU slots, and everything that can happen to it:
kill from another terminal, kill -9 of the driver then resume, a host lost mid-batch, Ctrl-C.

Runs through the installed `cosmos` command against a lab of 2 hosts x 2 GPU slots."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from cosmos_driver.ansible_adapter import AnsibleAdapter, inventory_hosts
from cosmos_driver.batch import load_batch
from cosmos_driver.batch_runner import BatchRunner
from cosmos_driver.lab import sshd
from cosmos_driver.lab.processes import read_pid, wait_until
from cosmos_driver.store import RunStore
from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import cosmos, infer_json, records, start_infer

FAST_RETRIES = {"COSMOS_RETRY_DELAYS": "0.5,1"}


def wait_for_states(state: Path, wanted: str, count: int, timeout: float = 120) -> dict:
    def enough():
        return sum(1 for r in records(state).values() if r["state"] == wanted) >= count

    assert wait_until(enough, timeout, 0.5), f"fewer than {count} runs reached {wanted}"
    return records(state)


def container_starts(lab, batch_id: str, since: str) -> dict[str, int]:
    """How many times the engine started a container of each run of the batch."""
    out = lab.engine("events", "--since", since, "--until", datetime.now(UTC).isoformat(),
                     "--filter", "event=start", "--filter", f"label=cosmos.batch_id={batch_id}",
                     "--format", "{{index .Actor.Attributes \"cosmos.run_id\"}}")  # fmt: skip
    counts: dict[str, int] = {}
    for run_id in out.split():
        counts[run_id] = counts.get(run_id, 0) + 1
    return counts


def simulator_records(lab, run_ids) -> list[dict]:
    """What the simulator saw of each run, read from the lab hosts' run folders."""
    found = []
    for path in lab.paths.root.glob("host-*/remote/runs/*/outputs/.simulator/output.json"):
        if path.parts[-4] in run_ids:
            record = json.loads(path.read_text().splitlines()[-1])
            found.append({"run_id": path.parts[-4], "host": path.parts[-7], **record})
    return found


def test_batch_uses_every_slot_without_sharing_a_gpu(lab, tmp_path):
    jobs = [job(f"s{i}", env={"COSMOS_SIM_DURATION": "3"}) for i in range(8)]
    batch = write_batch(tmp_path, "slots", jobs)
    state = tmp_path / "state"
    result = infer_json(batch, state, lab.inventory)
    assert result.code == 0, result.stderr
    runs = result.json()["runs"]
    assert {r["state"] for r in runs} == {"succeeded"}
    assert {r["host"] for r in runs} == {"lab-1", "lab-2"}
    for run in runs:
        run_dir = state / "runs" / run["run_id"]
        assert (run_dir / "outputs/output.mp4").stat().st_size > 0
        assert (run_dir / "logs/container.log").exists()
    seen = simulator_records(lab, {r["run_id"] for r in runs})
    assert len(seen) == 8
    by_device: dict[tuple, list] = {}
    for rec in seen:
        by_device.setdefault((rec["host"], rec["CUDA_VISIBLE_DEVICES"]), []).append(rec)
    assert len(by_device) == 4, "2 hosts x 2 slots all used"
    for spans in by_device.values():
        spans.sort(key=lambda r: r["start"])
        for prev, nxt in itertools.pairwise(spans):
            assert nxt["start"] >= prev["end"], f"{prev['run_id']} and {nxt['run_id']} overlap"


def test_no_thread_or_ansible_process_is_left(lab, tmp_path):
    batch = load_batch(write_batch(tmp_path, "clean", [job("c1"), job("c2")]))
    store = RunStore(tmp_path / "state")
    counts = {h: 2 for h in inventory_hosts(lab.inventory)}
    result = BatchRunner(AnsibleAdapter(lab.inventory, store.root / "tmp"), store, counts).run(
        batch
    )
    assert result.ok
    assert [t.name for t in threading.enumerate() if t.name.startswith("cosmos-")] == []
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    commands = [Path(f"/proc/{c}/cmdline").read_bytes() for c in children
                if Path(f"/proc/{c}").exists()]  # fmt: skip
    assert not [c for c in commands if b"ansible" in c]


def test_kill_run_from_another_terminal(lab, tmp_path):
    batch = write_batch(tmp_path, "killme", [job("long", env={"COSMOS_SIM_DURATION": "120"})])
    state = tmp_path / "state"
    infer = start_infer(batch, state, lab.inventory)
    try:
        (run_id,) = wait_for_states(state, "running", 1)
        begin = time.monotonic()
        killed = cosmos("kill", "--run", run_id, "--grace", "5", "--state-dir", str(state),
                        "--inventory", str(lab.inventory), "--json")  # fmt: skip
        took = time.monotonic() - begin
        assert killed.code == 0, killed.stderr
        infer.wait(120)
    finally:
        infer.kill()
    record = records(state)[run_id]
    assert record["state"] == "cancelled"
    assert record["failure"]["reason"] == "cancelled"
    assert (state / "runs" / run_id / "logs/container.log").exists()
    assert lab.containers(f"cosmos.run_id={run_id}") == []
    assert took < 5 + 30, f"cancel took {took:.1f} s"


def test_kill_9_of_the_driver_then_resume_runs_each_job_once(lab, tmp_path):
    jobs = [job(f"r{i}", env={"COSMOS_SIM_DURATION": "8"}) for i in range(6)]
    batch = write_batch(tmp_path, "resume", jobs)
    state = tmp_path / "state"
    since = datetime.now(UTC).isoformat()
    infer = start_infer(batch, state, lab.inventory)
    wait_for_states(state, "running", 2)
    infer.send_signal(signal.SIGKILL)
    infer.wait(10)
    again = infer_json(batch, state, lab.inventory)
    assert again.code == 0, again.stderr
    final = records(state)
    assert len(final) == 6
    assert {r["state"] for r in final.values()} == {"succeeded"}
    batch_id = next(iter(final.values()))["batch_id"]
    assert container_starts(lab, batch_id, since) == {run_id: 1 for run_id in final}


def test_ctrl_c_leaves_containers_and_says_how_to_resume(lab, tmp_path):
    jobs = [job(f"i{i}", env={"COSMOS_SIM_DURATION": "10"}) for i in range(3)]
    batch = write_batch(tmp_path, "interrupt", jobs)
    state = tmp_path / "state"
    infer = start_infer(batch, state, lab.inventory)
    wait_for_states(state, "running", 1)
    infer.send_signal(signal.SIGINT)
    _, err = infer.communicate(timeout=60)
    assert infer.returncode == 130
    assert "run the same command again" in err
    batch_id = next(iter(records(state).values()))["batch_id"]
    assert lab.containers(f"cosmos.batch_id={batch_id}"), "started containers keep running"
    again = infer_json(batch, state, lab.inventory)
    assert again.code == 0, again.stderr
    assert {r["state"] for r in records(state).values()} == {"succeeded"}


def lose_host(lab, index: int) -> None:
    """The host is gone as far as the driver can tell: its sshd and open sessions stop."""
    sshd.stop_sshd(lab.paths, index)
    assert read_pid(lab.paths.host_dir(index) / "sshd.pid") is None


def test_lost_host_sends_its_waiting_jobs_elsewhere(lab, tmp_path):
    jobs = [job(f"h{i}", env={"COSMOS_SIM_DURATION": "6"}) for i in range(8)]
    batch = write_batch(tmp_path, "hostdown", jobs)
    state = tmp_path / "state"
    infer = start_infer(batch, state, lab.inventory, env=FAST_RETRIES)
    try:
        wait_for_states(state, "running", 2)
        lose_host(lab, 2)
        time.sleep(15)
        ports = json.loads(lab.paths.config.read_text())["ports"]
        sshd.start_sshd(lab.paths, 2, ports[1])
        _out, err = infer.communicate(timeout=300)
    finally:
        infer.kill()
        if read_pid(lab.paths.host_dir(2) / "sshd.pid") is None:
            sshd.start_sshd(lab.paths, 2, json.loads(lab.paths.config.read_text())["ports"][1])
    assert infer.returncode == 0, err[-3000:]
    final = records(state)
    assert {r["state"] for r in final.values()} == {"succeeded"}
    notes = [n["text"] for r in final.values() for n in r["notes"]]
    assert any("lab-2" in n and ("set aside" in n or "unreachable" in n) for n in notes), notes
    assert any(r["host"] == "lab-1" for r in final.values())
