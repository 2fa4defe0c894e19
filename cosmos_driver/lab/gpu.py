"""The lab's GPUs: the nvidia-smi stand-in on the lab hosts, with the lab's GPU count.

The stand-in (simulator/nvidia-smi) is the only GPU the lab has. The hosts run it through a
small wrapper that fixes the GPU count; the simulator image carries the same script."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from cosmos_driver.lab.paths import LabPaths

log = logging.getLogger(__name__)

STANDIN = Path(__file__).resolve().parent / "simulator" / "nvidia-smi"
HOST_PYTHON = "/usr/bin/python3"  # the lab hosts' ansible_python_interpreter


def command_path(paths: LabPaths) -> Path:
    """Where the lab hosts find nvidia-smi."""
    return paths.bin / "nvidia-smi"


def install(paths: LabPaths, gpus: int) -> Path:
    """Install the stand-in and its wrapper (exporting the GPU count); return the command."""
    script = paths.bin / "nvidia-smi-standin.py"
    _write_if_changed(script, STANDIN.read_bytes(), 0o644)
    wrapper = (
        "#!/bin/sh\n"
        "# Written by `invoke lab.up`: the lab's nvidia-smi, a stand-in with the lab's GPUs.\n"
        f"COSMOS_SIM_GPUS={int(gpus)}\n"
        "export COSMOS_SIM_GPUS\n"
        f'exec {HOST_PYTHON} {script} "$@"\n'
    )
    command = command_path(paths)
    _write_if_changed(command, wrapper.encode(), 0o755)
    log.info("lab nvidia-smi: %s (%d GPUs)", command, gpus)
    return command


def host_vars(paths: LabPaths) -> dict[str, str]:
    """Inventory host variables that point the roles at the lab's nvidia-smi."""
    return {"cosmos_nvidia_smi": str(command_path(paths))}


def _write_if_changed(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` atomically, and only when its content differs (no needless mtime)."""
    if path.exists() and path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    Path(tmp).chmod(mode)
    Path(tmp).replace(path)
