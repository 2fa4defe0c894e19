"""The lab's Slurm configuration: what slurm.conf and gres.conf say, and the files made once
(munge key, GPU stand-in devices). Pure: nothing here starts a daemon."""

from __future__ import annotations

import stat
from pathlib import Path

from cosmos_driver.lab import slurm
from cosmos_driver.lab.paths import LabPaths

PATHS = LabPaths(Path("/var/tmp/lab-under-test"))
NODE = slurm.SlurmNode(controller="box.example", name="box", cpus=8, gpus=4)


def settings(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines if " " not in line)


def test_slurm_conf_names_the_cluster_its_controller_and_lab_paths():
    conf = settings(slurm.slurm_conf(PATHS, NODE))
    assert conf["ClusterName"] == "cosmos-lab"
    assert conf["SlurmctldHost"] == "box.example(127.0.0.1)"
    assert conf["AuthType"] == "auth/munge"
    assert conf["AuthInfo"] == "socket=/var/tmp/lab-under-test/slurm/munge/munge.socket"
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldPidFile", "SlurmdPidFile"):
        assert conf[key].startswith("/var/tmp/lab-under-test/slurm/"), key
    for key in ("SlurmctldLogFile", "SlurmdLogFile", "JobCompLoc"):
        assert conf[key].startswith("/var/tmp/lab-under-test/slurm/"), key


def test_slurm_conf_needs_no_cgroups_and_no_accounting_daemon():
    conf = settings(slurm.slurm_conf(PATHS, NODE))
    assert conf["ProctrackType"] == "proctrack/linuxproc"
    assert conf["TaskPlugin"] == "task/none"
    assert conf["JobAcctGatherType"] == "jobacct_gather/none"
    assert conf["AccountingStorageType"] == "accounting_storage/none"
    assert conf["JobCompType"] == "jobcomp/filetxt"
    assert conf["SelectType"] == "select/cons_tres"
    assert conf["SelectTypeParameters"] == "CR_Core"
    assert (conf["SlurmUser"], conf["KillWait"], conf["OverTimeLimit"]) == ("root", "5", "0")


def test_slurm_conf_has_one_node_with_its_gpus_in_one_default_partition():
    lines = slurm.slurm_conf(PATHS, NODE).splitlines()
    assert "GresTypes=gpu" in lines
    nodes = [line for line in lines if line.startswith("NodeName=")]
    assert nodes == [
        "NodeName=box NodeAddr=127.0.0.1 CPUs=8 RealMemory=1024 Gres=gpu:4 State=UNKNOWN"
    ]
    partitions = [line for line in lines if line.startswith("PartitionName=")]
    assert partitions == ["PartitionName=lab Nodes=box Default=YES MaxTime=INFINITE State=UP"]


def test_a_node_without_gpus_offers_none():
    node = slurm.SlurmNode(controller="box", name="box", cpus=2, gpus=0)
    assert "Gres=" not in slurm.slurm_conf(PATHS, node)
    assert "Name=gpu" not in slurm.gres_conf(PATHS, node)


def test_gres_conf_gives_each_gpu_a_stand_in_device_file():
    lines = slurm.gres_conf(PATHS, NODE).splitlines()
    assert lines[1:] == [
        "NodeName=box Name=gpu File=/var/tmp/lab-under-test/slurm/gpus/nvidia[0-3]"
    ]


def test_this_node_has_at_least_one_cpu_per_gpu():
    node = slurm.this_node(gpus=512)
    assert node.cpus == 512
    assert node.gpus == 512
    assert node.name == node.controller.split(".")[0]


def test_the_munge_key_is_made_once_and_readable_by_its_owner_only(tmp_path):
    paths = LabPaths(tmp_path)
    slurm.ensure_munge_key(paths)
    key = tmp_path / "slurm" / "munge" / "munge.key"
    first = key.read_bytes()
    slurm.ensure_munge_key(paths)
    assert key.read_bytes() == first
    assert len(first) == slurm.MUNGE_KEY_BYTES
    assert stat.S_IMODE(key.stat().st_mode) == 0o400


def test_gpu_devices_are_links_to_dev_null_and_follow_the_count(tmp_path):
    paths = LabPaths(tmp_path)
    slurm.ensure_gpu_devices(paths, 3)
    slurm.ensure_gpu_devices(paths, 2)
    devices = sorted((tmp_path / "slurm" / "gpus").iterdir())
    assert [d.name for d in devices] == ["nvidia0", "nvidia1"]
    assert [str(d.readlink()) for d in devices] == ["/dev/null"] * 2


def test_client_env_points_at_the_lab_slurm_conf():
    assert slurm.client_env(PATHS) == {"SLURM_CONF": "/var/tmp/lab-under-test/slurm/slurm.conf"}
