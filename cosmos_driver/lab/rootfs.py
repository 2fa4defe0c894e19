"""The simulator image's base: a Debian root filesystem made offline-capable by debootstrap.

Built once and cached as a tarball keyed by its recipe, since no image registry is reachable."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from cosmos_driver.errors import LabError
from cosmos_driver.lab.paths import rootfs_cache_dir

log = logging.getLogger(__name__)

SUITE = "bookworm"
PACKAGES = ("python3", "ffmpeg")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def rootfs_tarball() -> Path:
    """The cached root filesystem tarball, built now if missing."""
    mirror = os.environ.get("COSMOS_DEBIAN_MIRROR", DEFAULT_MIRROR)
    recipe = f"minbase {SUITE} {','.join(PACKAGES)}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    tarball = rootfs_cache_dir() / f"rootfs-{SUITE}-{key}.tar"
    if not tarball.exists():
        _build(tarball, mirror)
    return tarball


def _build(tarball: Path, mirror: str) -> None:
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    log.info("building the simulator's Debian root filesystem (about a minute, once)")
    try:
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(work / "root"),
                mirror,
            ]
        )
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(work / "root"), "-cf", str(partial), "."])
        partial.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-800:]
        raise LabError(f"{argv[0]} failed (rc {result.returncode}): {tail}")
