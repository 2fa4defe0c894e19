"""A real OpenSSH server on 127.0.0.1 per lab host, with its own host key and config."""

from __future__ import annotations

import getpass
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cosmos_driver.errors import LabError
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import free_port, port_free, read_pid, stop_pid, wait_until

log = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshHost:
    """One lab host: its index, port and folders."""

    index: int
    port: int
    folder: Path

    @property
    def name(self) -> str:
        return f"lab-{self.index}"

    @property
    def pid_file(self) -> Path:
        return self.folder / "sshd.pid"

    @property
    def host_key(self) -> Path:
        return self.folder / "host_key"


def ensure_key(path: Path) -> None:
    """An ed25519 key pair at `path` (and .pub), made once."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cosmos-lab", "-f", str(path)],
        check=True,
    )


def ensure_client_key(paths: LabPaths) -> None:
    """The client key and an authorized_keys file that trusts it."""
    ensure_key(paths.client_key)
    public = paths.client_key.with_suffix(".pub").read_text()
    paths.authorized_keys.write_text(public)
    paths.authorized_keys.chmod(0o600)


def start_sshd(paths: LabPaths, index: int, wanted_port: int | None) -> SshHost:
    """Start (or keep) the sshd of lab host `index`; reuse its port when it is free."""
    folder = paths.host_dir(index)
    folder.mkdir(parents=True, exist_ok=True)
    if wanted_port and read_pid(folder / "sshd.pid"):
        return SshHost(index, wanted_port, folder)
    port = wanted_port if wanted_port and port_free(wanted_port) else free_port()
    host = SshHost(index, port, folder)
    ensure_key(host.host_key)
    config = folder / "sshd_config"
    config.write_text(_sshd_config(host, paths))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    result = subprocess.run(
        [SSHD, "-f", str(config), "-E", str(folder / "sshd.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not wait_until(lambda: read_pid(host.pid_file) is not None, 5):
        raise LabError(f"sshd for {host.name} did not start: {result.stderr.strip()}")
    log.info("sshd for %s listens on 127.0.0.1:%s", host.name, port)
    return host


def stop_sshd(paths: LabPaths, index: int) -> None:
    """Stop the listener and its open sessions (a session outlives its listener, and a
    persisted SSH master would keep using it)."""
    pid = read_pid(paths.host_dir(index) / "sshd.pid")
    if not pid:
        return
    children = Path(f"/proc/{pid}/task/{pid}/children")
    sessions = children.read_text().split() if children.exists() else []
    stop_pid(pid, f"sshd of lab-{index}")
    for session in sessions:
        stop_pid(int(session), f"an ssh session of lab-{index}", grace=2)


def known_hosts_line(host: SshHost) -> str:
    public = host.host_key.with_suffix(".pub").read_text().split()
    return f"[127.0.0.1]:{host.port} {public[0]} {public[1]}\n"


def _sshd_config(host: SshHost, paths: LabPaths) -> str:
    return "\n".join(
        [
            f"Port {host.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host.host_key}",
            f"PidFile {host.pid_file}",
            f"AuthorizedKeysFile {paths.authorized_keys}",
            f"AllowUsers {getpass.getuser()}",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "MaxSessions 50",
            "MaxStartups 50:30:100",
            "LogLevel INFO",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "",
        ]
    )
