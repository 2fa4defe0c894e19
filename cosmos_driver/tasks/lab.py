"""lab.up, lab.down, lab.status: the local lab host (real sshd and dockerd on this machine)."""

from __future__ import annotations

from invoke import task
from rich.table import Table

from cosmos_driver.errors import ValidationError
from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.tasks.common import JSON_HELP, cli_errors, console, print_json

LAB_DIR_HELP = "lab folder (default: $COSMOS_LAB_DIR, else /var/tmp/cosmos-lab)"


@task(
    help={
        "hosts": "number of lab hosts, each its own sshd and remote folder (default: as last "
        "time, else 1)",
        "gpus": "simulated GPU slots per host (default: as last time, else 1)",
        "slurm": "also start the lab's Slurm: munged, slurmctld and one slurmd (without it, a "
        "Slurm that runs is left alone)",
        "slurm_gpus": "GPUs of the Slurm node (default: hosts × gpus)",
        "lab_dir": LAB_DIR_HELP,
    }
)
@cli_errors
# lab_dir before the Slurm options, so that Invoke keeps -l for --lab-dir
def up(c, hosts=None, gpus=None, lab_dir=None, slurm=False, slurm_gpus=None):
    """Start the lab: sshd on 127.0.0.1, dockerd, the simulator image; print the inventory."""
    paths = LabPaths.from_env(lab_dir)
    inventory = lab_control.up(
        paths,
        _count("--hosts", hosts),
        _count("--gpus", gpus),
        slurm=slurm,
        slurm_gpus=_count("--slurm-gpus", slurm_gpus),
    )
    console.print(f"lab is up; inventory: {inventory}")
    if slurm:
        console.print(f"slurm is up; SLURM_CONF={paths.slurm_conf}")


@task(help={"lab_dir": LAB_DIR_HELP})
@cli_errors
def down(c, lab_dir=None):
    """Stop every lab process and lift its mounts (keys and the image cache stay)."""
    paths = LabPaths.from_env(lab_dir)
    lab_control.down(paths)
    console.print(f"lab in {paths.root} is down")


@task(help={"lab_dir": LAB_DIR_HELP, "json": JSON_HELP})
@cli_errors
def status(c, lab_dir=None, json=False):
    """Say what of the lab runs: each host's sshd, the engine, the checkpoint mirror, the
    inventory."""
    report = lab_control.status(LabPaths.from_env(lab_dir))
    if json:
        print_json(report)
        return
    table = Table("host", "port", "sshd pid", "remote root", title=f"lab {report['lab_dir']}")
    for host in report["hosts"]:
        table.add_row(
            host["name"], str(host["port"]), str(host["sshd_pid"] or "stopped"), host["remote_root"]
        )
    console.print(table)
    console.print(
        f"dockerd: {report['dockerd_pid'] or 'stopped'}  socket: {report['docker_socket']}"
    )
    console.print(
        f"mirror: {report['mirror_pid'] or 'stopped'}  url: {report['mirror_url'] or '-'}"
    )
    console.print(f"inventory: {report['inventory']}")
    console.print(_slurm_line(report["slurm"]))
    console.print("lab is " + ("up" if report["running"] else "down"))


def _slurm_line(slurm: dict) -> str:
    pids = "  ".join(
        f"{daemon}: {slurm[f'{daemon}_pid'] or 'stopped'}"
        for daemon in ("slurmctld", "slurmd", "munged")
    )
    return f"slurm: {pids}  SLURM_CONF={slurm['slurm_conf'] or '-'}"


def _count(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not str(value).isdigit():
        raise ValidationError(f"{option} takes a whole number, got {value!r}")
    return int(value)
