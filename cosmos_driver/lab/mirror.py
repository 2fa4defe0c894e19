"""The lab's checkpoint mirror: a small generated tree shaped like Transfer1's, served over HTTP
on 127.0.0.1 as a site's own mirror would serve it (plain file URLs, a bearer token).

It runs as its own process (`python -m cosmos_driver.lab.mirror`), so lab.up can return while
it serves. Tests make it misbehave through a faults file read on every request."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import socket
import subprocess
import sys
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from cosmos_driver.checkpoints import ManifestEntry, write_manifest
from cosmos_driver.errors import LabError
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import free_port, read_pid, stop_pid, wait_until

log = logging.getLogger(__name__)

PROFILE = "lab"
KIB = 1024
READY_SECONDS = 10
# What a fault does to a file's answer (faults.json: {"<path>": "<fault>"}).
FAULTS = ("wrong-content", "missing", "truncate")
# A few files in Transfer1's layout (<org>/<repo>/<file>), a few KB to 2 MB each.
TREE: tuple[tuple[str, int], ...] = (
    ("nvidia/Cosmos-Transfer1-7B/base_model.pt", 2048 * KIB),
    ("nvidia/Cosmos-Transfer1-7B/vis_control.pt", 512 * KIB),
    ("nvidia/Cosmos-Transfer1-7B/edge_control.pt", 640 * KIB),
    ("nvidia/Cosmos-Transfer1-7B/depth_control.pt", 576 * KIB),
    ("nvidia/Cosmos-Transfer1-7B/seg_control.pt", 448 * KIB),
    ("nvidia/Cosmos-Transfer1-7B/config.json", 3 * KIB),
    ("nvidia/Cosmos-Tokenize1-CV8x8x8-720p/encoder.jit", 384 * KIB),
    ("nvidia/Cosmos-Tokenize1-CV8x8x8-720p/decoder.jit", 320 * KIB),
    ("nvidia/Cosmos-Tokenize1-CV8x8x8-720p/config.json", 2 * KIB),
)


def file_content(path: str, size: int) -> bytes:
    """The bytes of one lab checkpoint: derived from its path, the same on every machine."""
    return hashlib.shake_256(path.encode()).digest(size)


def ensure_tree(paths: LabPaths) -> Path:
    """Write the lab tree and its manifest once; later calls only mend what differs."""
    entries = []
    for rel, size in TREE:
        content = file_content(rel, size)
        target = paths.mirror_files / rel
        if not target.is_file() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        entries.append(ManifestEntry(rel, size, hashlib.sha256(content).hexdigest()))
    manifest = paths.mirror_manifest
    if not manifest.exists() or _manifest_files(manifest) != _as_dicts(entries):
        write_manifest(manifest, PROFILE, entries)
        log.info("lab checkpoint manifest written: %s", manifest)
    return manifest


def _manifest_files(path: Path) -> Any:
    return (yaml.safe_load(path.read_text()) or {}).get("files")


def _as_dicts(entries: list[ManifestEntry]) -> list[dict[str, Any]]:
    ordered = sorted(entries, key=lambda e: e.path)
    return [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in ordered]


# --- serving -------------------------------------------------------------------------------


class MirrorServer(ThreadingHTTPServer):
    """An HTTP server that knows its file root and its faults file."""

    def __init__(self, port: int, files: Path, faults: Path) -> None:
        self.files = files.resolve()
        self.faults = faults
        super().__init__(("127.0.0.1", port), MirrorHandler)

    def fault_for(self, rel: str) -> str | None:
        """The fault set for `rel` right now; the file is read on every request."""
        try:
            faults = json.loads(self.faults.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable faults file %s: %s", self.faults, error)
            return None
        fault = faults.get(rel) if isinstance(faults, dict) else None
        return fault if fault in FAULTS else None

    def content(self, rel: str) -> bytes | None:
        """The answer for `rel` (faults applied), or None when there is none."""
        target = (self.files / rel).resolve()
        if not target.is_relative_to(self.files) or not target.is_file():
            return None
        fault = self.fault_for(rel)
        if fault == "missing":
            return None
        data = target.read_bytes()
        if fault == "wrong-content":
            return bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        if fault == "truncate":
            return data[: len(data) // 2]
        return data


class MirrorHandler(BaseHTTPRequestHandler):
    """GET of files under the root, for any non-empty bearer token."""

    server: MirrorServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        authorized = has_bearer_token(self.headers.get("Authorization"))
        data = self.server.content(unquote(path).lstrip("/")) if authorized else None
        status = HTTPStatus.OK if data is not None else HTTPStatus.NOT_FOUND
        if not authorized:
            status = HTTPStatus.UNAUTHORIZED
        # Method, path (no query string), status, whether a token came: never the token.
        log.info(
            "%s %s %s auth=%s", self.command, path, status.value, "yes" if authorized else "no"
        )
        body = data if data is not None else f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="cosmos-lab"')
        content_type = "application/octet-stream" if data is not None else "text/plain"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        """Silence the default access log: do_GET logs each request, without its headers."""


def has_bearer_token(header: str | None) -> bool:
    """Whether an Authorization header carries a non-empty bearer token."""
    scheme, _, token = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


# --- the process -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MirrorFiles:
    """The mirror process's own files under the lab's mirror folder."""

    folder: Path

    @property
    def pid(self) -> Path:
        return self.folder / "mirror.pid"

    @property
    def port(self) -> Path:
        return self.folder / "mirror.port"

    @property
    def log(self) -> Path:
        return self.folder / "mirror.log"


def mirror_pid(paths: LabPaths) -> int | None:
    return read_pid(MirrorFiles(paths.mirror).pid)


def mirror_port(paths: LabPaths) -> int | None:
    """The port the mirror was last given (kept across lab.up, like the sshd ports)."""
    try:
        return int(MirrorFiles(paths.mirror).port.read_text().strip())
    except (OSError, ValueError):
        return None


def mirror_url(paths: LabPaths) -> str | None:
    port = mirror_port(paths)
    return f"http://127.0.0.1:{port}/" if port else None


def start_mirror(paths: LabPaths) -> int:
    """Generate the tree and serve it (or keep the server that runs); return its port."""
    ensure_tree(paths)
    files = MirrorFiles(paths.mirror)
    port = mirror_port(paths)
    pid = mirror_pid(paths)
    if pid and port and answers(port):
        return port
    if pid:
        stop_pid(pid, "checkpoint mirror", grace=5)
    port = port if port and bindable(port) else free_port()
    argv = [sys.executable, "-m", __name__]
    argv += ["--files", str(paths.mirror_files), "--faults", str(paths.mirror_faults)]
    argv += ["--port", str(port)]
    with files.log.open("ab") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=log_file, start_new_session=True)
    files.pid.write_text(f"{process.pid}\n")
    files.port.write_text(f"{port}\n")
    if not wait_until(lambda: answers(port), READY_SECONDS, 0.1):
        raise LabError(
            f"the checkpoint mirror did not answer within {READY_SECONDS}s; see {files.log}"
        )
    log.info("checkpoint mirror serves %s on 127.0.0.1:%s", paths.mirror_files, port)
    return port


def stop_mirror(paths: LabPaths) -> None:
    """Stop the mirror process; its tree, manifest and port stay for the next lab.up."""
    pid = mirror_pid(paths)
    if pid:
        stop_pid(pid, "checkpoint mirror", grace=5)


def answers(port: int) -> bool:
    """Whether a mirror answers on `port` (an unauthenticated request gets its 401)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == HTTPStatus.UNAUTHORIZED
    except OSError:
        return False
    finally:
        connection.close()


def bindable(port: int) -> bool:
    """Whether the server could listen on `port`: as it binds (SO_REUSEADDR), so connections
    of a stopped mirror still in TIME_WAIT do not cost it its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def host_vars(paths: LabPaths) -> dict[str, str]:
    """Inventory variables that point a lab host's checkpoints role at the mirror."""
    url = mirror_url(paths)
    if url is None:
        raise LabError("the checkpoint mirror has no port yet; start it first")
    return {
        "cosmos_checkpoints_source": "mirror",
        "cosmos_checkpoints_mirror_url": url,
        # The lab mirror wants a bearer token: the hub token travels there, so the secrets
        # test follows a real token from the driver to a server and into no file.
        "cosmos_checkpoints_mirror_sends_hf_token": True,
        "cosmos_checkpoint_manifest": str(paths.mirror_manifest),
    }


def main(argv: list[str] | None = None) -> None:
    """Serve the mirror until SIGTERM (the lab starts this as its own process)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=Path, required=True)
    parser.add_argument("--faults", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    with MirrorServer(args.port, args.files, args.faults) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
