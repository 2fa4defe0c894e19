"""`lab.status` as a table: every part of the lab is shown, the checkpoint mirror included.
The lab itself is faked at its control module's boundary (lab_control.status)."""

from __future__ import annotations

from typing import Any

import pytest

from cosmos_driver.cli import program
from cosmos_driver.tasks import lab as lab_tasks


def lab_report(mirror_pid: int | None, mirror_url: str | None) -> dict[str, Any]:
    return {
        "lab_dir": "/var/tmp/lab-under-test",
        "hosts": [{"name": "lab-1", "port": 2201, "sshd_pid": 11, "remote_root": "/r/1"}],
        "gpus_per_host": 2,
        "dockerd_pid": 22,
        "docker_socket": "/s/docker.sock",
        "inventory": "/i/inventory.yml",
        "mounts": [],
        "mirror_pid": mirror_pid,
        "mirror_url": mirror_url,
        "running": mirror_pid is not None,
        "slurm": {
            "munged_pid": None,
            "slurmctld_pid": None,
            "slurmd_pid": None,
            "slurm_conf": None,
            "running": False,
        },
    }


@pytest.mark.parametrize(
    ("pid", "url", "line"),
    [
        (4242, "http://127.0.0.1:8911/", "mirror: 4242  url: http://127.0.0.1:8911/"),
        (None, None, "mirror: stopped  url: -"),
    ],
)
def test_status_table_shows_the_mirror(monkeypatch, capsys, pid, url, line):
    monkeypatch.setattr(lab_tasks.lab_control, "status", lambda paths: lab_report(pid, url))
    monkeypatch.setenv("COLUMNS", "200")
    program.run(["cosmos", "lab.status"], exit=False)
    out = capsys.readouterr().out
    assert line in out
    assert "dockerd: 22" in out


def test_status_table_shows_the_slurm_daemons_and_slurm_conf(monkeypatch, capsys):
    report = lab_report(4242, "http://127.0.0.1:8911/")
    report["slurm"] = {
        "munged_pid": 31,
        "slurmctld_pid": 32,
        "slurmd_pid": None,
        "slurm_conf": "/var/tmp/lab-under-test/slurm/slurm.conf",
        "running": False,
    }
    monkeypatch.setattr(lab_tasks.lab_control, "status", lambda paths: report)
    monkeypatch.setenv("COLUMNS", "200")
    program.run(["cosmos", "lab.status"], exit=False)
    out = capsys.readouterr().out
    assert (
        "slurm: slurmctld: 32  slurmd: stopped  munged: 31  "
        "SLURM_CONF=/var/tmp/lab-under-test/slurm/slurm.conf"
    ) in out


def test_up_passes_slurm_and_its_gpus_on(monkeypatch, capsys, tmp_path):
    calls = []
    monkeypatch.setattr(
        lab_tasks.lab_control,
        "up",
        lambda paths, *args, **kwargs: calls.append((paths.root, args, kwargs)),
    )
    argv = ["cosmos", "lab.up", "-l", str(tmp_path), "-h", "2", "--slurm", "--slurm-gpus", "3"]
    program.run(argv, exit=False)
    assert calls == [(tmp_path, (2, None), {"slurm": True, "slurm_gpus": 3})]
    assert f"SLURM_CONF={tmp_path}/slurm/slurm.conf" in capsys.readouterr().out
