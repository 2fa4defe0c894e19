"""The lab's Slurm, for real: `lab.up --slurm` starts munged, slurmctld and slurmd, and jobs
run through sbatch, squeue, scancel and sacct with SLURM_CONF pointing at the lab.

A job with `--time=1` is submitted first, so its minute passes while the other tests run.
If Slurm cannot start, every test here errors loudly; nothing is skipped."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

import pytest

from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab import slurm
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import pid_alive, wait_until
from tests.fakes.cli import cosmos


@dataclass(frozen=True)
class SlurmLab:
    paths: LabPaths
    overdue_job: str  # submitted with --time=1 as soon as Slurm was up

    def run(self, *argv: str) -> str:
        """A Slurm client command against the lab's Slurm; its stdout (it must succeed)."""
        env = dict(os.environ, **slurm.client_env(self.paths))
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout.strip()

    def sbatch(self, *argv: str) -> str:
        return self.run("sbatch", "--parsable", *argv).split(";")[0]

    def queued(self, job: str) -> list[list[str]]:
        """squeue rows of a job (or array): raw id, array task, state, reason, name, comment."""
        rows = self.run("squeue", "-h", "-j", job, "-o", "%A|%K|%T|%r|%j|%k")
        return [row.split("|") for row in rows.splitlines()]

    def ended(self) -> dict[str, dict[str, str]]:
        """The jobcomp file's records (jobcomp/filetxt: one line per ended job), by JobId."""
        records = {}
        for line in slurm.jobcomp_file(self.paths).read_text().splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            records[fields["JobId"]] = fields
        return records

    def wait_ended(self, job: str, seconds: float) -> None:
        assert wait_until(lambda: not self.queued(job), seconds, 0.5), self.queued(job)


@pytest.fixture(scope="module")
def slurm_lab(lab, tmp_path_factory) -> SlurmLab:
    """The session's lab (2 hosts, 2 GPUs each) with its Slurm, through the real CLI."""
    result = cosmos("lab.up", "--hosts", "2", "--gpus", "2", "--slurm")
    assert result.code == 0, result.stdout + result.stderr
    assert f"SLURM_CONF={lab.paths.slurm_conf}" in result.stdout
    out = tmp_path_factory.mktemp("overdue")
    paths = lab.paths
    job = SlurmLab(paths, "").sbatch(
        "--time=1", "--job-name=overdue", f"--output={out}/%j.out", "--wrap", "sleep 300"
    )
    return SlurmLab(paths, job)


def test_status_shows_the_slurm_daemons_and_slurm_conf(slurm_lab):
    result = cosmos("lab.status", "--json")
    assert result.code == 0, result.stderr
    report = result.json()["slurm"]
    assert report["slurm_conf"] == str(slurm_lab.paths.slurm_conf)
    pids = [report[f"{daemon}_pid"] for daemon in slurm.DAEMONS]
    assert len(pids) == 3
    assert all(pid and pid_alive(pid) for pid in pids)


def test_up_again_with_the_same_settings_changes_nothing(slurm_lab):
    conf = slurm_lab.paths.slurm_conf
    before = (slurm.status(slurm_lab.paths), conf.stat().st_mtime_ns)
    lab_control.up(slurm_lab.paths, hosts=2, gpus=2, slurm=True)
    assert (slurm.status(slurm_lab.paths), conf.stat().st_mtime_ns) == before
    lab_control.up(slurm_lab.paths, hosts=2, gpus=2)  # without --slurm: left alone
    assert slurm.status(slurm_lab.paths) == before[0]


def test_the_node_offers_every_lab_gpu_in_the_default_partition(slurm_lab):
    assert slurm_lab.run("sinfo", "-h", "-o", "%P %a %G") == "lab* up gpu:4"


def test_an_array_runs_at_most_two_at_once_and_completes(slurm_lab, tmp_path):
    array = slurm_lab.sbatch(
        "--array=0-3%2", "--gres=gpu:1", "--job-name=lab-array", "--comment=cosmos-lab-test",
        f"--output={tmp_path}/%A_%a.out", "--wrap", "sleep 2; echo $SLURM_ARRAY_TASK_ID",
    )  # fmt: skip
    seen: list[list[str]] = []
    deadline = time.monotonic() + 60
    while (rows := slurm_lab.queued(array)) and time.monotonic() < deadline:
        seen += rows
        assert sum(row[2] == "RUNNING" for row in rows) <= 2, rows
        time.sleep(0.2)
    assert not rows, f"the array did not end within 60 s: {rows}"
    assert {(row[4], row[5]) for row in seen} == {("lab-array", "cosmos-lab-test")}
    assert any(row[3] == "JobArrayTaskLimit" for row in seen), seen  # %2 held them back
    outputs = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert outputs == {f"{array}_{task}.out": f"{task}\n" for task in range(4)}
    tasks = {
        r["ArrayTaskId"]: r for r in slurm_lab.ended().values() if r.get("ArrayJobId") == array
    }
    assert {task: r["JobState"] for task, r in tasks.items()} == dict.fromkeys("0123", "COMPLETED")
    raw_ids = ",".join(r["JobId"] for r in tasks.values())
    states = slurm_lab.run("sacct", "--completion", "-j", raw_ids, "-n", "-P", "-o", "State")
    assert states.splitlines() == ["COMPLETED"] * 4


def test_scancel_ends_a_running_job_cancelled(slurm_lab, tmp_path):
    job = slurm_lab.sbatch(f"--output={tmp_path}/%j.out", "--wrap", "sleep 300")
    assert wait_until(lambda: [r[2] for r in slurm_lab.queued(job)] == ["RUNNING"], 30, 0.2)
    slurm_lab.run("scancel", job)
    slurm_lab.wait_ended(job, 20)
    assert slurm_lab.ended()[job]["JobState"] == "CANCELLED"
    assert "JobState=CANCELLED" in slurm_lab.run("scontrol", "show", "job", job)


def test_plain_sacct_needs_slurmdbd(slurm_lab):
    """The lab keeps no accounting database: only `sacct --completion` (the jobcomp file)."""
    env = dict(os.environ, **slurm.client_env(slurm_lab.paths))
    done = subprocess.run(["sacct"], env=env, capture_output=True, text=True, check=False)
    assert "accounting storage is disabled" in done.stdout + done.stderr


def test_a_job_past_its_time_limit_ends_timeout(slurm_lab):
    """--time=1 with OverTimeLimit=0: slurmctld ends it within about 90 s of its start."""
    slurm_lab.wait_ended(slurm_lab.overdue_job, 120)
    record = slurm_lab.ended()[slurm_lab.overdue_job]
    assert (record["Name"], record["JobState"]) == ("overdue", "TIMEOUT")
