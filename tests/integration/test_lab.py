"""The lab itself: idempotent up, honest status, and a down that leaves nothing behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import pid_alive
from tests.fakes.cli import cosmos


def test_status_reports_a_running_lab(lab):
    result = cosmos("lab.status", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["running"] is True
    assert report["inventory"] == str(lab.inventory)
    assert len(report["hosts"]) == 2  # the session's lab: conftest brings up 2 hosts
    assert all(pid_alive(h["sshd_pid"]) for h in report["hosts"])


def test_up_again_keeps_what_runs(lab):
    before = lab_control.status(lab.paths)
    assert lab_control.up(lab.paths, hosts=None, gpus=None) == lab.inventory
    after = lab_control.status(lab.paths)
    assert [h["sshd_pid"] for h in after["hosts"]] == [h["sshd_pid"] for h in before["hosts"]]
    assert after["dockerd_pid"] == before["dockerd_pid"]
    assert after["mirror_pid"] == before["mirror_pid"]
    assert after["mirror_url"] == before["mirror_url"]


def test_inventory_checks_host_keys(lab):
    hosts = yaml.safe_load(lab.inventory.read_text())["all"]["children"]["cosmos_lab"]["hosts"]
    for host in hosts.values():
        assert "StrictHostKeyChecking=yes" in host["ansible_ssh_common_args"]
        assert str(lab.paths.known_hosts) in host["ansible_ssh_common_args"]
        assert host["cosmos_gpu_flags"] == []


def test_down_leaves_no_process_mount_or_socket(tmp_path):
    """A lab of its own (short path: sockets), brought up and down."""
    paths = LabPaths(Path(f"/var/tmp/cosmos-lab-down-{os.getpid()}"))
    try:
        lab_control.up(paths)
        running = lab_control.status(paths)
        pids = [h["sshd_pid"] for h in running["hosts"]]
        pids += [running["dockerd_pid"], running["mirror_pid"]]
        assert running["running"]
        assert len(pids) == 3 and all(pids)  # one host's sshd, dockerd, the mirror
        result = cosmos("lab.down", "--lab-dir", str(paths.root))
        assert result.code == 0, result.stderr
        stopped = lab_control.status(paths)
        assert not stopped["running"]
        assert [pid_alive(pid) for pid in pids] == [False] * 3
        assert stopped["mounts"] == []
        assert not paths.docker_socket.exists()
    finally:
        lab_control.down(paths)
        shutil.rmtree(paths.root, ignore_errors=True)
