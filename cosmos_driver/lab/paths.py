"""Where the lab keeps its keys, daemons, sockets and host folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LAB_DIR = "/var/tmp/cosmos-lab"  # short: unix socket paths are limited to ~108 bytes


@dataclass(frozen=True)
class LabPaths:
    """The lab's folder layout; one instance per lab directory."""

    root: Path

    @classmethod
    def from_env(cls, override: str | None = None) -> LabPaths:
        return cls(Path(override or os.environ.get("COSMOS_LAB_DIR") or DEFAULT_LAB_DIR))

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def client_key(self) -> Path:
        return self.ssh / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh / "authorized_keys"

    @property
    def docker(self) -> Path:
        return self.root / "docker"

    @property
    def docker_socket(self) -> Path:
        return self.docker / "docker.sock"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def bin(self) -> Path:
        """Commands the lab hosts get on top of this machine's (the nvidia-smi stand-in)."""
        return self.root / "bin"

    @property
    def config(self) -> Path:
        return self.root / "lab.json"

    @property
    def mirror(self) -> Path:
        """The checkpoint mirror's folder: its tree, manifest, faults, pid, port and log."""
        return self.root / "mirror"

    @property
    def mirror_files(self) -> Path:
        """The tree the mirror serves (manifest paths are relative to it)."""
        return self.mirror / "files"

    @property
    def mirror_manifest(self) -> Path:
        return self.mirror / "manifest.yaml"

    @property
    def mirror_faults(self) -> Path:
        """Tests write {"<path>": "wrong-content" | "missing" | "truncate"} here."""
        return self.mirror / "faults.json"

    @property
    def source_repo(self) -> Path:
        """The bare git repository the image role clones (the simulator's build context)."""
        return self.root / "source.git"

    @property
    def slurm(self) -> Path:
        """The lab's Slurm: munge key and socket, configs, state, spool, logs, pid files."""
        return self.root / "slurm"

    @property
    def slurm_conf(self) -> Path:
        """What SLURM_CONF names for sinfo, sbatch, squeue, scancel, scontrol and sacct."""
        return self.slurm / "slurm.conf"

    def host_dir(self, index: int) -> Path:
        return self.root / f"host-{index}"

    def remote_root(self, index: int) -> Path:
        """What the lab host calls its cosmos_remote_root."""
        return self.host_dir(index) / "remote"


def rootfs_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cosmos-driver"
