"""A real Slurm for the lab, from Debian's slurm-wlm and munge: one munged, one slurmctld and
one slurmd on this machine, with every file (key, configs, state, logs) under the lab's slurm/."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cosmos_driver.errors import LabError
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import read_pid, stop_pid, wait_until

log = logging.getLogger(__name__)

MUNGED = "/usr/sbin/munged"
SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"
CLUSTER = "cosmos-lab"
PARTITION = "lab"
REAL_MEMORY_MB = 1024  # modest: memory is not a consumable resource here (CR_Core)
CONTROLLER_PORT = 6817
NODE_PORT = 6818
READY_SECONDS = 30
MUNGE_KEY_BYTES = 1024
# The daemons in the order they start; they stop in the reverse order.
DAEMONS = ("munged", "slurmctld", "slurmd")


@dataclass(frozen=True)
class SlurmNode:
    """The lab cluster's one node: its controller's name, its own name and what it offers."""

    controller: str
    name: str
    cpus: int
    gpus: int


def this_node(gpus: int) -> SlurmNode:
    """This machine as a Slurm node; at least one CPU per GPU, so GPUs bound concurrency."""
    controller = socket.gethostname()
    cpus = max(len(os.sched_getaffinity(0)), gpus, 1)
    return SlurmNode(controller, controller.split(".")[0], cpus, gpus)


def pid_file(paths: LabPaths, daemon: str) -> Path:
    return paths.slurm / f"{daemon}.pid"


def munge_socket(paths: LabPaths) -> Path:
    return paths.slurm / "munge" / "munge.socket"


def jobcomp_file(paths: LabPaths) -> Path:
    """One line per ended job (jobcomp/filetxt): what `sacct --completion` reads."""
    return paths.slurm / "jobcomp.txt"


def client_env(paths: LabPaths) -> dict[str, str]:
    """What sinfo, sbatch, squeue, scancel, scontrol and sacct need to reach the lab's Slurm."""
    return {"SLURM_CONF": str(paths.slurm_conf)}


def slurm_conf(paths: LabPaths, node: SlurmNode) -> str:
    """slurm.conf for the lab: no cgroups, no slurmdbd, every path under the lab's slurm/."""
    folder = paths.slurm
    settings = {
        "ClusterName": CLUSTER,
        "SlurmctldHost": f"{node.controller}(127.0.0.1)",
        "SlurmctldPort": CONTROLLER_PORT,
        "SlurmdPort": NODE_PORT,
        "SlurmUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={munge_socket(paths)}",
        "StateSaveLocation": folder / "state",
        "SlurmdSpoolDir": folder / "spool",
        "SlurmctldPidFile": pid_file(paths, "slurmctld"),
        "SlurmdPidFile": pid_file(paths, "slurmd"),
        "SlurmctldLogFile": folder / "slurmctld.log",
        "SlurmdLogFile": folder / "slurmd.log",
        **_scheduling(),
        "JobCompType": "jobcomp/filetxt",
        "JobCompLoc": jobcomp_file(paths),
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    return "\n".join([_HEADER, *lines, *_node_lines(node), ""])


_HEADER = "# Written by `invoke lab.up --slurm`: the lab's Slurm. Do not edit; re-run it."


def _scheduling() -> dict[str, object]:
    """Plugins that need no cgroups or accounting daemon, and quick, strict time limits."""
    return {
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "GresTypes": "gpu",
        # The node's CPUs may exceed this machine's (one per GPU): trust the config.
        "SlurmdParameters": "config_overrides",
        "ReturnToService": 2,
        "KillWait": 5,
        "OverTimeLimit": 0,
        "MinJobAge": 60,
        "MailProg": "/bin/true",
    }


def _node_lines(node: SlurmNode) -> list[str]:
    gres = f" Gres=gpu:{node.gpus}" if node.gpus else ""
    return [
        f"NodeName={node.name} NodeAddr=127.0.0.1 CPUs={node.cpus} "
        f"RealMemory={REAL_MEMORY_MB}{gres} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node.name} Default=YES MaxTime=INFINITE State=UP",
    ]


def gres_conf(paths: LabPaths, node: SlurmNode) -> str:
    """The node's GPUs, each a stand-in device file (gres/gpu in 22.05 drops GPUs without
    one); Slurm numbers them from the files' digits for each job's CUDA_VISIBLE_DEVICES."""
    if not node.gpus:
        return f"{_HEADER}\n"
    files = f"{gpu_devices(paths)}/nvidia[0-{node.gpus - 1}]"
    return f"{_HEADER}\nNodeName={node.name} Name=gpu File={files}\n"


def gpu_devices(paths: LabPaths) -> Path:
    return paths.slurm / "gpus"


def ensure_gpu_devices(paths: LabPaths, gpus: int) -> None:
    """gpus/nvidia0 … as links to /dev/null: character devices that lead nowhere."""
    folder = gpu_devices(paths)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"nvidia{index}" for index in range(gpus)}
    for extra in (p for p in folder.iterdir() if p.name not in wanted):
        extra.unlink()
    for name in sorted(wanted - {p.name for p in folder.iterdir()}):
        (folder / name).symlink_to("/dev/null")


def start(paths: LabPaths, gpus: int) -> None:
    """Write the key and configs, then start what does not run; a changed config restarts
    slurmctld and slurmd. The same settings again change nothing."""
    node = this_node(gpus)
    for folder in (paths.slurm, paths.slurm / "state", paths.slurm / "spool"):
        folder.mkdir(parents=True, exist_ok=True)
    ensure_munge_key(paths)
    ensure_gpu_devices(paths, gpus)
    changed = _write_if_changed(paths.slurm_conf, slurm_conf(paths, node))
    changed = _write_if_changed(paths.slurm / "gres.conf", gres_conf(paths, node)) or changed
    if changed:
        for daemon in ("slurmd", "slurmctld"):
            _stop_daemon(paths, daemon)
    _start_munged(paths)
    for daemon, binary in (("slurmctld", SLURMCTLD), ("slurmd", SLURMD)):
        _start_daemon(paths, daemon, [binary, "-f", str(paths.slurm_conf)])
    if changed:  # a registration the old config refused left the node drained
        _client(paths, "scontrol", "update", f"nodename={node.name}", "state=resume")
    _wait_for_node(paths, node)


def ensure_munge_key(paths: LabPaths) -> None:
    """A random munge key, made once: mode 0400, owned by root, whom munged runs as."""
    folder = paths.slurm / "munge"
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    key = folder / "munge.key"
    if key.exists():
        return
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(os.urandom(MUNGE_KEY_BYTES))


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def _start_munged(paths: LabPaths) -> None:
    """munged as root on the lab's own key, socket and files (it never reads /etc/munge)."""
    folder = paths.slurm / "munge"
    argv = [
        MUNGED,
        f"--key-file={folder / 'munge.key'}",
        f"--socket={munge_socket(paths)}",
        f"--pid-file={pid_file(paths, 'munged')}",
        f"--log-file={folder / 'munged.log'}",
        f"--seed-file={folder / 'munged.seed'}",
    ]
    _start_daemon(paths, "munged", argv)


def _start_daemon(paths: LabPaths, daemon: str, argv: list[str]) -> None:
    """Run a self-daemonizing `argv` unless its pid file names a live process."""
    if read_pid(pid_file(paths, daemon)):
        return
    output = paths.slurm / f"{daemon}.out"
    env = dict(os.environ, **client_env(paths))
    with output.open("ab") as sink:
        result = subprocess.run(argv, stdout=sink, stderr=sink, env=env, check=False)
    if result.returncode != 0 or not wait_until(
        lambda: read_pid(pid_file(paths, daemon)) is not None, READY_SECONDS, 0.2
    ):
        raise LabError(f"{daemon} did not start; see {output} and {paths.slurm}/{daemon}.log")
    log.info("%s runs (pid %s)", daemon, read_pid(pid_file(paths, daemon)))


def _wait_for_node(paths: LabPaths, node: SlurmNode) -> None:
    """Wait until the node takes jobs (idle, mixed or allocated); name its state if not."""
    ready = ("idle", "mixed", "allocated")
    state = ""

    def node_ready() -> bool:
        nonlocal state
        state = _client(paths, "sinfo", "-h", "-N", "-n", node.name, "-o", "%T")
        # "idle*" (not responding) is not ready, nor a state recovered from before slurmd's start
        return state in ready and _registered(paths, node)

    if not wait_until(node_ready, READY_SECONDS, 0.5):
        reason = _client(paths, "sinfo", "-h", "-R", "-o", "%E")
        raise LabError(
            f"slurm node {node.name} is {state or 'unknown'} ({reason or 'no reason given'}); "
            f"see {paths.slurm}/slurmd.log and slurmctld.log"
        )


def _registered(paths: LabPaths, node: SlurmNode) -> bool:
    """Whether the running slurmd has registered: slurmctld knows its start time."""
    shown = _client(paths, "scontrol", "-o", "show", "node", node.name)
    field = next((f for f in shown.split() if f.startswith("SlurmdStartTime=")), "=None")
    try:
        registered = datetime.fromisoformat(field.split("=", 1)[1]).timestamp()
    except ValueError:
        return False
    return registered >= int(pid_file(paths, "slurmd").stat().st_mtime) - 1


def _client(paths: LabPaths, *argv: str) -> str:
    """A Slurm client command against the lab's Slurm; its stdout ('' when it fails)."""
    env = dict(os.environ, **client_env(paths))
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def stop(paths: LabPaths) -> None:
    """Cancel the lab's jobs, then stop slurmd, slurmctld and munged by their pid files."""
    if read_pid(pid_file(paths, "slurmctld")):
        _client(paths, "scancel", f"--partition={PARTITION}")
        wait_until(lambda: not _client(paths, "squeue", "-h", "-t", "R,CG"), 15, 0.5)
    for daemon in reversed(DAEMONS):
        _stop_daemon(paths, daemon)


def _stop_daemon(paths: LabPaths, daemon: str) -> None:
    pid = read_pid(pid_file(paths, daemon))
    if pid:
        stop_pid(pid, daemon)


def status(paths: LabPaths) -> dict[str, object]:
    """Each daemon's pid (None when stopped) and the SLURM_CONF for the client commands."""
    pids = {f"{daemon}_pid": read_pid(pid_file(paths, daemon)) for daemon in DAEMONS}
    return {
        **pids,
        "slurm_conf": str(paths.slurm_conf) if paths.slurm_conf.exists() else None,
        "running": all(pids.values()),
    }
