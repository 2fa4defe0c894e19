"""`cosmos infer` on the lab's Slurm: the inventory's login host (lab-1 over its real sshd,
with `cosmos_backend: slurm`) submits a 4-run sweep as one job array through the Slurm role;
Slurm runs each task's container on the lab's dockerd; the driver polls, collects from the
shared filesystem and judges. If Slurm cannot start, this errors loudly; nothing is skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml

from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab import slurm
from cosmos_driver.lab.processes import wait_until
from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import COSMOS, ROOT, cosmos, infer_json, records, start_infer

LOGIN = "lab-1"


@pytest.fixture(scope="module")
def slurm_inventory(lab, tmp_path_factory) -> Path:
    """The lab with its Slurm up, and an inventory of one Slurm login host: lab-1."""
    lab_control.up(lab.paths, hosts=2, gpus=2, slurm=True)
    hosts = yaml.safe_load(lab.inventory.read_text())["all"]["children"]["cosmos_lab"]["hosts"]
    login = dict(hosts[LOGIN])
    login.update(
        cosmos_backend="slurm",
        cosmos_gpu_count=2,
        cosmos_slurm_max_parallel=4,
        cosmos_slurm_env=slurm.client_env(lab.paths),
        cosmos_slurm_jobcomp_file=str(slurm.jobcomp_file(lab.paths)),
    )
    path = tmp_path_factory.mktemp("slurm-inventory") / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {LOGIN: login}}}))
    return path


def decodes(path: Path) -> bool:
    capture = cv2.VideoCapture(str(path))
    ok, _ = capture.read()
    capture.release()
    return ok


def jobcomp_tasks(lab, job_id: str) -> dict[str, dict[str, str]]:
    """The jobcomp file's records of an array's tasks, by task id."""
    tasks = {}
    for line in slurm.jobcomp_file(lab.paths).read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("ArrayJobId") == job_id:
            tasks[fields["ArrayTaskId"]] = fields
    return tasks


def test_a_sweep_runs_on_slurm_as_one_array_and_every_run_is_collected(
    lab, slurm_inventory, tmp_path
):
    sweep = {"guidance": [3, 7], "seed": [1, 2]}
    batch = write_batch(tmp_path, "slurm-sweep", [job("sweep", **sweep)])
    state = tmp_path / "state"
    result = infer_json(batch, state, slurm_inventory)
    assert result.code == 0, result.stdout + result.stderr
    runs = result.json()["runs"]
    assert len(runs) == 4
    assert [run["state"] for run in runs] == ["succeeded"] * 4, [r["failure"] for r in runs]
    records = [json.loads((state / "runs" / r["run_id"] / "run.json").read_text()) for r in runs]
    job_ids = {record["slurm_job_id"] for record in records}
    assert len(job_ids) == 1, job_ids  # one sbatch for the whole sweep
    (job_id,) = job_ids
    assert sorted(record["slurm_array_task_id"] for record in records) == [0, 1, 2, 3]
    for record in records:
        run_dir = state / "runs" / record["run_id"]
        assert decodes(run_dir / "outputs" / "output.mp4"), run_dir
        assert json.loads((run_dir / "logs" / "container-exit.json").read_text())["exit_code"] == 0
        assert "Diffusion sampling" in (run_dir / "logs" / "container.log").read_text()
        assert record["host"] == LOGIN
        assert [step["state"] for step in record["history"]] == [
            "pending", "staging", "running", "succeeded",
        ]  # fmt: skip
    tasks = jobcomp_tasks(lab, job_id)
    assert {task: r["JobState"] for task, r in tasks.items()} == dict.fromkeys("0123", "COMPLETED")
    assert {r["Name"] for r in tasks.values()} == {record["slurm_job_name"]}
    assert record["slurm_job_name"].startswith(f"cosmos-{result.json()['batch_id']}.1gpu.")
    slurm_log = (state / "tmp" / "slurm.log").read_text()
    assert slurm_log.count("Submit | Submit the array") == 1, "more than one sbatch"


def test_the_array_is_named_and_commented_with_the_run_ids(lab, slurm_inventory, tmp_path):
    """While a run is in Slurm, squeue shows it by its array's job name (the batch id,
    GPU shape and group) and its run id as the comment."""
    batch = write_batch(tmp_path, "slurm-named", [job("named", env={"COSMOS_SIM_DURATION": "8"})])
    state = tmp_path / "state"
    env = dict(os.environ, **slurm.client_env(lab.paths))
    infer = subprocess.Popen(
        [str(Path(sys.executable).parent / "cosmos"), "infer", "--batch", str(batch),
         "--state-dir", str(state), "--inventory", str(slurm_inventory), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: set[str] = set()
    try:
        while infer.poll() is None:
            rows = subprocess.run(
                ["squeue", "-h", "-o", "%j|%k"], env=env, capture_output=True, text=True,
                check=True,
            ).stdout  # fmt: skip
            seen.update(row for row in rows.splitlines() if "slurm-named" in row)
            time.sleep(0.2)
    finally:
        out, err = infer.communicate(timeout=300)
    assert infer.returncode == 0, out + err
    (run,) = json.loads(out)["runs"]
    assert seen == {f"{run['slurm_job_name']}|{run['run_id']}"}, seen
    assert run["slurm_job_name"].startswith(f"cosmos-{json.loads(out)['batch_id']}.1gpu."), run


def test_a_failing_and_an_overdue_run_end_with_their_reasons(lab, slurm_inventory, tmp_path):
    """Exit 3 in Slurm: failed with container_exit and its code. A run past its job's
    timeout: its task is scancelled (the script stops its container) and it fails timeout."""
    jobs = [
        job("boom", env={"COSMOS_SIM_EXIT_CODE": "3", "COSMOS_SIM_DURATION": "1"}),
        job("slow", timeout=6, env={"COSMOS_SIM_DURATION": "120"}),
    ]
    batch = write_batch(tmp_path, "slurm-fails", jobs)
    state = tmp_path / "state"
    result = infer_json(batch, state, slurm_inventory)
    assert result.code != 0, result.stdout
    runs = {run["job_name"]: run for run in result.json()["runs"]}
    boom, slow = runs["boom"], runs["slow"]
    assert (boom["state"], boom["failure"]["reason"]) == ("failed", "container_exit"), boom
    assert boom["failure"]["detail"] == "container exited with code 3"
    assert (slow["state"], slow["failure"]["reason"]) == ("failed", "timeout"), slow
    assert boom["slurm_job_id"] == slow["slurm_job_id"]  # one array for both
    tasks = jobcomp_tasks(lab, boom["slurm_job_id"])
    states = {tasks[str(r["slurm_array_task_id"])]["JobState"] for r in (boom, slow)}
    assert states == {"FAILED", "CANCELLED"}, tasks
    assert lab.containers(f"cosmos.batch_id={result.json()['batch_id']}") == []


def test_a_running_task_shows_its_step_and_kill_from_another_terminal_scancels_it(
    lab, slurm_inventory, tmp_path
):
    batch = write_batch(tmp_path, "slurm-kill", [job("long", env={"COSMOS_SIM_DURATION": "120"})])
    state = tmp_path / "state"
    infer = start_infer(batch, state, slurm_inventory)
    try:
        assert wait_until(lambda: _states(state) == ["running"], 120, 0.5), _states(state)
        (run_id,) = records(state)
        # Its diffusion step, from the log tail each poll of the array reads.
        assert wait_until(lambda: records(state)[run_id]["progress"], 60, 0.5), records(state)
        killed = cosmos("kill", "--run", run_id, "--grace", "5", "--state-dir", str(state),
                        "--inventory", str(slurm_inventory), "--json")  # fmt: skip
        assert killed.code == 0, killed.stderr
        infer.wait(120)
    finally:
        infer.kill()
    record = records(state)[run_id]
    assert (record["state"], record["failure"]["reason"]) == ("cancelled", "cancelled")
    job_task = f"{record['slurm_job_id']}_{record['slurm_array_task_id']}"
    assert f"scancel {job_task}" in [note["text"] for note in record["notes"]]
    assert lab.containers(f"cosmos.run_id={run_id}") == []


def test_kill_with_no_driver_alive_scancels_the_task_and_records_it_cancelled(
    lab, slurm_inventory, tmp_path
):
    """The driver is killed -9 while its run is in Slurm; `cosmos kill` alone scancels the
    task, waits for Slurm to end it, collects the log from the shared filesystem."""
    batch = write_batch(
        tmp_path, "slurm-kill-alone", [job("long", env={"COSMOS_SIM_DURATION": "120"})]
    )
    state = tmp_path / "state"
    _infer_until_then_kill_9(batch, state, slurm_inventory, lambda: _states(state) == ["running"])
    (run_id,) = records(state)
    killed = cosmos("kill", "--run", run_id, "--grace", "5", "--state-dir", str(state),
                    "--inventory", str(slurm_inventory), "--json")  # fmt: skip
    assert killed.code == 0, killed.stderr
    record = records(state)[run_id]
    assert (record["state"], record["failure"]["reason"]) == ("cancelled", "cancelled"), record
    job_id, task = record["slurm_job_id"], str(record["slurm_array_task_id"])
    assert f"scancel {job_id}_{task}" in [note["text"] for note in record["notes"]]
    assert jobcomp_tasks(lab, job_id)[task]["JobState"] == "CANCELLED"
    container_log = (state / "runs" / run_id / "logs" / "container.log").read_text()
    assert "exitcode  : 143" in container_log  # the container got Slurm's SIGTERM
    assert lab.containers(f"cosmos.run_id={run_id}") == []


def test_the_same_batch_file_runs_unchanged_on_ssh_hosts_and_on_slurm(
    lab, slurm_inventory, tmp_path
):
    """One batch file, two inventories: the lab's SSH hosts, then its Slurm. The same runs
    succeed on both with the same outputs; only the Slurm records name a job and task."""
    sweep = {"guidance": [3, 7]}
    batch = write_batch(tmp_path, "both-backends", [job("both", **sweep), job("single")])
    text = batch.read_bytes()
    results = {}
    for backend, inventory in (("ssh", lab.inventory), ("slurm", slurm_inventory)):
        state = tmp_path / backend
        result = infer_json(batch, state, inventory)
        assert result.code == 0, backend + result.stdout + result.stderr
        results[backend] = {run["run_id"]: run for run in result.json()["runs"]}
        for run_id, run in results[backend].items():
            assert run["state"] == "succeeded", (backend, run["failure"])
            assert decodes(state / "runs" / run_id / "outputs" / "output.mp4"), (backend, run_id)
    assert batch.read_bytes() == text
    ssh, on_slurm = results["ssh"], results["slurm"]
    assert sorted(ssh) == sorted(on_slurm) and len(ssh) == 3
    assert {run["host"] for run in ssh.values()} <= {"lab-1", "lab-2"}
    assert all(run["slurm_job_id"] is None for run in ssh.values())
    assert {run["host"] for run in on_slurm.values()} == {LOGIN}
    assert all(run["slurm_job_id"] for run in on_slurm.values())
    for run_id in ssh:
        assert ssh[run_id]["parameters"] == on_slurm[run_id]["parameters"]
        assert ssh[run_id]["outputs"] == on_slurm[run_id]["outputs"]


def _infer_until_then_kill_9(batch: Path, state: Path, inventory: Path, ready) -> None:
    """`cosmos infer` in its own process group until `ready()`, then the whole group killed
    with SIGKILL, as a driver dies without a chance to clean up."""
    first = subprocess.Popen(
        [COSMOS, "infer", "--batch", str(batch), "--state-dir", str(state),
         "--inventory", str(inventory), "--json"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_until(ready, 180, 0.5), records(state)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)


def _states(state: Path) -> list[str]:
    return [r["state"] for r in records(state).values()]


@pytest.mark.parametrize("job_ids_recorded", [True, False], ids=["ids-recorded", "ids-lost"])
def test_the_same_infer_after_kill_9_adopts_the_array_and_submits_nothing_again(
    lab, slurm_inventory, tmp_path, job_ids_recorded
):
    """The driver (its whole process group) is killed -9 while the array runs; the same
    `cosmos infer` finds the tasks in Slurm by their recorded job and task ids, waits for
    them and collects them. Slurm itself shows one array job for the batch's job name.
    ids-lost: the records lose their job ids, as when the driver dies between sbatch and
    recording them; the resume finds the array by the job name recorded before sbatch."""
    sweep = {"guidance": [3, 7], "seed": [1, 2]}
    env = {"COSMOS_SIM_DURATION": "20"}
    batch = write_batch(tmp_path, "slurm-resume", [job("resume", env=env, **sweep)])
    state = tmp_path / "state"
    jobcomp_before = len(slurm.jobcomp_file(lab.paths).read_text().splitlines())
    _infer_until_then_kill_9(
        batch, state, slurm_inventory, lambda: _submitted_and_one_running(state)
    )
    before = records(state)
    assert not all(r["state"] == "succeeded" for r in before.values()), before
    if not job_ids_recorded:
        _forget_job_ids(state)
    result = infer_json(batch, state, slurm_inventory)
    assert result.code == 0, result.stdout + result.stderr
    runs = result.json()["runs"]
    assert [run["state"] for run in runs] == ["succeeded"] * 4, [r["failure"] for r in runs]
    after = records(state)
    job_ids = {r["slurm_job_id"] for r in after.values()}
    assert len(job_ids) == 1, job_ids
    assert job_ids == {r["slurm_job_id"] for r in before.values()}
    for run_id, record in after.items():
        assert decodes(state / "runs" / run_id / "outputs" / "output.mp4"), run_id
        submitted = [n["text"] for n in record["notes"] if n["text"].startswith("submitted to")]
        found = [n["text"] for n in record["notes"] if n["text"].startswith("found in Slurm")]
        # One way or the other, never both: its id as sbatch gave it, or found by its name.
        assert (len(submitted), len(found)) == ((1, 0) if job_ids_recorded else (0, 1)), record
    name = f"cosmos-{result.json()['batch_id']}."
    lines = slurm.jobcomp_file(lab.paths).read_text().splitlines()[jobcomp_before:]
    ours = [_fields(line) for line in lines if f"Name={name}" in line]
    assert {f["ArrayJobId"] for f in ours} == job_ids, ours
    assert sorted(f["ArrayTaskId"] for f in ours) == ["0", "1", "2", "3"], ours
    assert (state / "tmp" / "slurm.log").read_text().count("Submit | Submit the array") == 1


def _forget_job_ids(state: Path) -> None:
    """Each record as a driver killed right after sbatch leaves it: staging, job name and
    task recorded, no job id."""
    for path in (state / "runs").glob("*/run.json"):
        record = json.loads(path.read_text())
        record["slurm_job_id"], record["state"] = None, "staging"
        record["notes"] = [n for n in record["notes"] if not n["text"].startswith("submitted")]
        path.write_text(json.dumps(record))


def _submitted_and_one_running(state: Path) -> bool:
    """Every run has its Slurm task recorded and at least one runs."""
    found = records(state).values()
    submitted = len(found) == 4 and all(r.get("slurm_job_id") for r in found)
    return submitted and any(r["state"] == "running" for r in found)


def _fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split() if "=" in item)
