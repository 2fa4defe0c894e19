"""Bring the local lab up and down: sshd per host, one dockerd, the simulator image, and an
inventory that points the toolkit at it. Every step keeps what already runs (idempotent)."""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall
from cosmos_driver.errors import LabError
from cosmos_driver.lab import dockerd, gpu, mirror, packages, rootfs, source_repo, sshd
from cosmos_driver.lab import slurm as lab_slurm
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import read_pid

log = logging.getLogger(__name__)

SIMULATOR_IMAGE = "cosmos-transfer1-sim:latest"
SIMULATOR_DIR = Path(__file__).resolve().parent / "simulator"


@dataclass(frozen=True)
class LabConfig:
    """What lab.up was asked for and which ports its hosts got."""

    hosts: int = 1
    gpus: int = 1
    ports: tuple[int, ...] = ()

    @classmethod
    def load(cls, paths: LabPaths) -> LabConfig | None:
        if not paths.config.exists():
            return None
        data = json.loads(paths.config.read_text())
        return cls(data["hosts"], data["gpus"], tuple(data["ports"]))

    def save(self, paths: LabPaths) -> None:
        paths.config.write_text(json.dumps(asdict(self), indent=2) + "\n")


def up(
    paths: LabPaths,
    hosts: int | None = 1,
    gpus: int | None = 1,
    slurm: bool = False,
    slurm_gpus: int | None = None,
) -> Path:
    """Start everything the lab needs and return the path of its inventory.

    hosts or gpus None keeps what the lab was last brought up with (else 1). slurm also
    starts the lab's Slurm with slurm_gpus GPUs (None: hosts × gpus); without it, a Slurm
    that runs is left alone."""
    previous = LabConfig.load(paths)
    hosts = hosts if hosts is not None else (previous.hosts if previous else 1)
    gpus = gpus if gpus is not None else (previous.gpus if previous else 1)
    if hosts < 1 or gpus < 0 or (slurm_gpus or 0) < 0:
        raise LabError(
            "lab.up needs --hosts of at least 1 and --gpus and --slurm-gpus of at least 0"
        )
    packages.ensure_packages(slurm=slurm)
    paths.root.mkdir(parents=True, exist_ok=True)
    _stop_extra_hosts(paths, previous, hosts)
    sshd.ensure_client_key(paths)
    old_ports = previous.ports if previous else ()
    started = [
        sshd.start_sshd(paths, i, old_ports[i - 1] if i <= len(old_ports) else None)
        for i in range(1, hosts + 1)
    ]
    paths.known_hosts.write_text("".join(sshd.known_hosts_line(h) for h in started))
    LabConfig(hosts, gpus, tuple(h.port for h in started)).save(paths)
    dockerd.start_dockerd(paths)
    gpu.install(paths, gpus)
    source_repo.publish(paths, SIMULATOR_DIR)
    mirror.start_mirror(paths)
    _write_inventory(paths, started, gpus)
    _build_simulator_image(paths)
    if slurm:
        lab_slurm.start(paths, hosts * gpus if slurm_gpus is None else slurm_gpus)
    return paths.inventory


def down(paths: LabPaths) -> None:
    """Stop every lab process and lift every lab mount; keys and caches stay."""
    lab_slurm.stop(paths)
    for folder in sorted(paths.root.glob("host-*")):
        sshd.stop_sshd(paths, int(folder.name.removeprefix("host-")))
    mirror.stop_mirror(paths)
    dockerd.stop_dockerd(paths)


def status(paths: LabPaths) -> dict[str, Any]:
    """What runs: each host's sshd, the engine, the checkpoint mirror, the inventory, and
    the Slurm daemons (which `running` leaves out: the lab runs without them)."""
    config = LabConfig.load(paths) or LabConfig(hosts=0, ports=())
    hosts = [
        {
            "name": f"lab-{i}",
            "port": port,
            "sshd_pid": read_pid(paths.host_dir(i) / "sshd.pid"),
            "remote_root": str(paths.remote_root(i)),
        }
        for i, port in enumerate(config.ports, start=1)
    ]
    engine_up = dockerd.engine_ready(paths.docker_socket)
    mirror_pid = mirror.mirror_pid(paths)
    daemons_up = engine_up and bool(mirror_pid)
    return {
        "lab_dir": str(paths.root),
        "hosts": hosts,
        "gpus_per_host": config.gpus,
        "dockerd_pid": dockerd.dockerd_pid(paths),
        "docker_socket": str(paths.docker_socket) if engine_up else None,
        "inventory": str(paths.inventory) if paths.inventory.exists() else None,
        "mounts": dockerd.lab_mounts(paths),
        "mirror_pid": mirror_pid,
        "mirror_url": mirror.mirror_url(paths) if mirror_pid else None,
        "running": bool(hosts) and all(h["sshd_pid"] for h in hosts) and daemons_up,
        "slurm": lab_slurm.status(paths),
    }


def _stop_extra_hosts(paths: LabPaths, previous: LabConfig | None, hosts: int) -> None:
    for index in range(hosts + 1, (previous.hosts if previous else 0) + 1):
        sshd.stop_sshd(paths, index)


def _write_inventory(paths: LabPaths, hosts: list[sshd.SshHost], gpus: int) -> None:
    """Every setting as a host variable, so each lab host is complete on its own."""
    inventory = {
        "all": {
            "children": {
                "cosmos_lab": {"hosts": {h.name: _host_vars(paths, h, gpus) for h in hosts}}
            }
        }
    }
    header = "# Written by `invoke lab.up`: the local lab's hosts. Do not edit; re-run lab.up.\n"
    paths.inventory.write_text(header + yaml.safe_dump(inventory, sort_keys=False))


def _host_vars(paths: LabPaths, host: sshd.SshHost, gpus: int) -> dict[str, Any]:
    ssh_args = (
        f"-o UserKnownHostsFile={paths.known_hosts} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes"
    )
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": host.port,
        "ansible_user": getpass.getuser(),
        "ansible_ssh_private_key_file": str(paths.client_key),
        "ansible_ssh_common_args": ssh_args,
        "ansible_python_interpreter": "/usr/bin/python3",
        "cosmos_engine": "docker",
        "cosmos_engine_env": {"DOCKER_HOST": f"unix://{paths.docker_socket}"},
        "cosmos_gpu_flags": [],
        "cosmos_container_args": ["--network", "none"],
        "cosmos_gpu_count": gpus,
        "cosmos_remote_root": str(paths.remote_root(host.index)),
        "cosmos_image": SIMULATOR_IMAGE,
        "cosmos_workspace_dir": "",
        # The lab disk is small: the roles' free-space thresholds shrink to match.
        "cosmos_preflight_min_free_gb": 1,
        "cosmos_health_min_free_gb": 1,
        **gpu.host_vars(paths),
        **source_repo.host_vars(paths),
        **mirror.host_vars(paths),
        # Images the image role builds keep lab.up's label, so lab.up does not rebuild them.
        "cosmos_image_labels": {"cosmos.simulator.sources": simulator_sources_hash()},
    }


def simulator_sources_hash() -> str:
    """A digest of the simulator's build context: the image is rebuilt when it changes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in SIMULATOR_DIR.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(SIMULATOR_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build_simulator_image(paths: LabPaths) -> None:
    adapter = AnsibleAdapter(paths.inventory, paths.root / "runner")
    call = PlaybookCall(
        playbook="lab_image.yml",
        limit="all",
        extravars={
            "cosmos_lab_rootfs": str(rootfs.rootfs_tarball()),
            "cosmos_lab_simulator_dir": str(SIMULATOR_DIR),
            "cosmos_lab_simulator_hash": simulator_sources_hash(),
        },
    )
    outcome = adapter.run(call, log_path=paths.root / "lab_image.log")
    if not outcome.ok:
        raise LabError(f"building the simulator image failed: {outcome.summary()}")
