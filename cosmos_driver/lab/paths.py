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
    def config(self) -> Path:
        return self.root / "lab.json"

    def host_dir(self, index: int) -> Path:
        return self.root / f"host-{index}"

    def remote_root(self, index: int) -> Path:
        """What the lab host calls its cosmos_remote_root."""
        return self.host_dir(index) / "remote"


def rootfs_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cosmos-driver"
