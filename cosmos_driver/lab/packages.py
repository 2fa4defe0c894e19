"""The lab's Debian packages: find what is missing, install it when we can, else say how."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from cosmos_driver.errors import LabError

log = logging.getLogger(__name__)

# binary the lab runs -> the Debian package that provides it
REQUIRED_BINARIES = {
    "/usr/sbin/sshd": "openssh-server",
    "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/sbin/dockerd": "docker.io",
    "/usr/sbin/debootstrap": "debootstrap",
    "/usr/bin/ffmpeg": "ffmpeg",
    "/usr/bin/git": "git",
}
# what `lab.up --slurm` runs as well (slurm-wlm brings slurmctld, slurmd and the client)
SLURM_BINARIES = {
    "/usr/sbin/slurmctld": "slurm-wlm",
    "/usr/sbin/slurmd": "slurm-wlm",
    "/usr/bin/sbatch": "slurm-wlm",
    "/usr/sbin/munged": "munge",
}


def missing_packages(slurm: bool = False) -> list[str]:
    """Debian packages whose binaries the lab needs and this machine lacks."""
    binaries = {**REQUIRED_BINARIES, **(SLURM_BINARIES if slurm else {})}
    missing = {pkg for path, pkg in binaries.items() if not os.access(path, os.X_OK)}
    if shutil.which("docker") is None:
        missing.add("docker.io")
    return sorted(missing)


def ensure_packages(slurm: bool = False) -> None:
    """Install missing lab packages with apt as root; otherwise fail naming them."""
    missing = missing_packages(slurm)
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LabError(
            f"the lab needs Debian packages {', '.join(missing)}; "
            f"install them with: sudo {' '.join(command)}"
        )
    log.info("installing lab packages: %s", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], command):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed: {result.stderr.strip()[-500:]}")
