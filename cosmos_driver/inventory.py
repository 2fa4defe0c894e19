"""The hosts of an inventory and the cosmos_* variables the driver reads from them, checked
before anything runs (as kubespray checks its inventory first): each problem names the
inventory, the host, the variable and the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_driver.ansible_adapter import inventory_hosts
from cosmos_driver.batch_checks import shown
from cosmos_driver.errors import ConfigurationError, ValidationError

GPU_COUNT_VAR = "cosmos_gpu_count"
BACKEND_VAR = "cosmos_backend"
# GPU hosts over SSH (the default), or a Slurm cluster's login host.
SSH_BACKEND = "ssh"
BACKENDS = frozenset({SSH_BACKEND, "slurm"})
MAX_PARALLEL_VAR = "cosmos_slurm_max_parallel"
DEFAULT_MAX_PARALLEL = 8
MAX_GPUS_PER_HOST = 64
# A host name is passed to ansible-playbook as --limit, where `* ? [ ] ! & , ~` are pattern
# syntax (a host named `gpu*` would select every host whose name starts with gpu), and it names
# files of the state directory, where `/` or a leading `.` would leave their folder.
HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@%+=-]{0,252}")
HOST_NAME_RULE = (
    "a host name must start with a letter, digit or '_', then letters, digits and "
    "'_ . : @ % + = -' (253 characters at most); rename the host and set its address with "
    "ansible_host"
)


@dataclass(frozen=True)
class SlurmSettings:
    """A Slurm cluster's login host (`cosmos_backend: slurm`), how many runs may be in Slurm
    at once (`cosmos_slurm_max_parallel`) and the GPUs of a node (its `cosmos_gpu_count`)."""

    login: str
    max_parallel: int
    gpus_per_node: int


@dataclass(frozen=True)
class Inventory:
    """An inventory's hosts and how many GPUs each offers (`cosmos_gpu_count`, default 1);
    `slurm` when a host is a Slurm login host, whose cluster then runs the batch."""

    path: Path
    gpu_counts: dict[str, int]
    slurm: SlurmSettings | None = None

    @property
    def hosts(self) -> list[str]:
        return list(self.gpu_counts)


def load_inventory(path: Path) -> Inventory:
    """Read `path` through Ansible and check every host; raise ValidationError listing every
    problem, or ConfigurationError when it has no host at all."""
    hosts = inventory_hosts(path)
    if not hosts:
        raise ConfigurationError(
            f"{path}: the inventory lists no hosts; add your GPU hosts under all.hosts "
            "(see inventory/example.yml)"
        )
    problems: list[str] = []
    counts = {}
    logins = []
    for name, hostvars in hosts.items():
        problems.extend(f"{path}: host {shown(name)}: {p}" for p in _host_problems(name))
        count, problem = gpu_count(hostvars)
        if problem:
            problems.append(f"{path}: host {name}: {GPU_COUNT_VAR}: {problem}")
        counts[name] = count
        backend, problem = backend_of(hostvars)
        if problem:
            problems.append(f"{path}: host {name}: {BACKEND_VAR}: {problem}")
        if backend == "slurm":
            logins.append(name)
    slurm, slurm_problems = _slurm_settings(path, hosts, counts, logins)
    problems.extend(slurm_problems)
    if problems:
        raise ValidationError(problems)
    return Inventory(path, counts, slurm)


def backend_of(hostvars: dict[str, Any]) -> tuple[str, str | None]:
    """A host's `cosmos_backend` (ssh when unset), or the problem with it."""
    raw = hostvars.get(BACKEND_VAR, SSH_BACKEND)
    if isinstance(raw, str) and raw in BACKENDS:
        return raw, None
    return SSH_BACKEND, (
        f"{shown(raw)} is not a backend; set it to ssh (a GPU host reached over SSH, the "
        "default) or slurm (the login host of a Slurm cluster)"
    )


def _slurm_settings(
    path: Path, hosts: dict[str, dict[str, Any]], counts: dict[str, int], logins: list[str]
) -> tuple[SlurmSettings | None, list[str]]:
    """The Slurm login host's settings; a problem when there are several, or a bad limit."""
    if not logins:
        return None, []
    if len(logins) > 1:
        return None, [
            f"{path}: hosts {', '.join(logins)}: {BACKEND_VAR}: slurm is set on more than one "
            "host; keep it on the cluster's one login host"
        ]
    login = logins[0]
    raw = hosts[login].get(MAX_PARALLEL_VAR, DEFAULT_MAX_PARALLEL)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        problem = (
            f"{shown(raw)} is not a whole number of at least 1; set how many runs may be in "
            "Slurm at once"
        )
        return None, [f"{path}: host {login}: {MAX_PARALLEL_VAR}: {problem}"]
    return SlurmSettings(login, raw, counts[login]), []


def _host_problems(name: str) -> list[str]:
    return [] if HOST_NAME.fullmatch(name) else [HOST_NAME_RULE]


def gpu_count(hostvars: dict[str, Any]) -> tuple[int, str | None]:
    """A host's `cosmos_gpu_count` as a number (1 when unset), or the problem with it."""
    raw = hostvars.get(GPU_COUNT_VAR, 1)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int):
        return 1, (
            f"{shown(raw)} is not a whole number; set it to the number of GPUs of the host "
            f"(0 to {MAX_GPUS_PER_HOST})"
        )
    if not 0 <= raw <= MAX_GPUS_PER_HOST:
        return 1, f"{raw} is out of range; a host has 0 to {MAX_GPUS_PER_HOST} GPUs"
    return raw, None
