"""A real Docker engine for the lab: its own socket and folders, no bridge, no iptables."""

from __future__ import annotations

import http.client
import logging
import socket
import subprocess
from pathlib import Path

from cosmos_driver.errors import LabError
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import read_pid, stop_pid, wait_until

log = logging.getLogger(__name__)

DOCKERD = "/usr/sbin/dockerd"
READY_SECONDS = 60


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path) -> None:
        super().__init__("localhost", timeout=2)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2)
        self.sock.connect(str(self.socket_path))


def engine_ready(socket_path: Path) -> bool:
    """Whether the engine answers its API's /_ping on `socket_path`."""
    if not socket_path.exists():
        return False
    connection = _UnixHTTPConnection(socket_path)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def dockerd_pid(paths: LabPaths) -> int | None:
    return read_pid(paths.docker / "dockerd.pid")


def start_dockerd(paths: LabPaths) -> None:
    """Start the lab's dockerd unless it already runs; wait until its API answers."""
    if dockerd_pid(paths) and engine_ready(paths.docker_socket):
        return
    paths.docker.mkdir(parents=True, exist_ok=True)
    argv = [
        DOCKERD,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=overlay2",
        f"--data-root={paths.docker / 'root'}",
        f"--exec-root={paths.docker / 'exec'}",
        f"--host=unix://{paths.docker_socket}",
        f"--pidfile={paths.docker / 'dockerd.pid'}",
    ]
    with (paths.docker / "dockerd.log").open("ab") as log_file:
        subprocess.Popen(argv, stdout=log_file, stderr=log_file, start_new_session=True)
    if not wait_until(lambda: engine_ready(paths.docker_socket), READY_SECONDS, 0.25):
        log_path = paths.docker / "dockerd.log"
        raise LabError(f"dockerd did not answer within {READY_SECONDS}s; see {log_path}")
    log.info("dockerd ready on %s", paths.docker_socket)


def stop_dockerd(paths: LabPaths) -> None:
    """Stop dockerd (it stops its containerd), then lift any mount it left behind."""
    pid = dockerd_pid(paths)
    if pid:
        stop_pid(pid, "dockerd", grace=30)
    for mount_point in lab_mounts(paths):
        subprocess.run(["umount", "-l", mount_point], check=False)
    paths.docker_socket.unlink(missing_ok=True)


def lab_mounts(paths: LabPaths) -> list[str]:
    """Mount points under the lab folder, deepest first."""
    root = str(paths.root)
    points = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)
