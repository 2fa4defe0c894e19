"""Who may use the dashboard and which files it may serve.

A token when it listens beyond loopback, a CSRF token on every action, a Host check against
DNS rebinding, and files served only when a record names them and they lie, without a
symlink, inside that run's folder (or are a video the run names as an input)."""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_driver.records import RunRecord
from cosmos_driver.store import RunStore

# Run and batch ids are slugs with dots and dashes (cosmos_driver.ids); nothing else is looked up.
ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,160}")
TOKEN_COOKIE = "cosmos_token"  # noqa: S105 (a cookie name, not a secret)
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
THUMB_LABELS = ("first", "middle")
INPUT_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm"})


@dataclass(frozen=True)
class Access:
    """The server's secrets: the bearer token (None on loopback without --token) and the
    CSRF token its pages carry."""

    token: str | None
    allowed_hosts: frozenset[str] | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def token_ok(self, offered: str | None) -> bool:
        return self.token is None or (
            offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())
        )

    def csrf_ok(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf.encode())

    def host_ok(self, host_header: str | None) -> bool:
        """The Host header names this server (a page of another site, rebound to 127.0.0.1,
        sends its own name)."""
        if self.allowed_hosts is None:
            return True
        return bool(host_header) and host_header.lower() in self.allowed_hosts


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host headers a browser sends to this server on loopback. Beyond loopback any
    name may reach it, so there the token, not the Host, is the check (None: any)."""
    if not is_loopback(host):
        return None
    names = {host, "127.0.0.1", "localhost", "[::1]"}
    return frozenset(f"{name}:{port}".lower() for name in names)


def valid_id(text: str) -> bool:
    return bool(ID.fullmatch(text)) and ".." not in text


def load_run(store: RunStore, run_id: str) -> RunRecord | None:
    """The record of a run id given in a URL; None for an id that is not one."""
    return store.load_run(run_id) if valid_id(run_id) else None


def run_file(store: RunStore, record: RunRecord, name: str) -> Path | None:
    """The file `name` of the run, only if its record lists it (outputs, logs, thumbnails)
    and it is a regular file reached without a symlink inside the run's folder."""
    if name not in {*record.outputs, *record.logs, *record.thumbnails, *input_thumbnails(record)}:
        return None
    folder = store.run_dir(record.run_id)
    path = folder / name
    if not _plain_inside(folder, path):
        return None
    return path


def input_thumbnails(record: RunRecord) -> list[str]:
    """The thumbnails `infer` writes of the inputs a record names (run.spec.prepare)."""
    return [f"thumbnails/input-{m}.{label}.jpg" for m in record.inputs for label in THUMB_LABELS]


def input_file(record: RunRecord, modality: str) -> Path | None:
    """An input video the run's record names, when it is a regular video file."""
    named = record.inputs.get(modality)
    if named is None:
        return None
    path = Path(named)
    if path.suffix.lower() not in INPUT_SUFFIXES or not path.is_absolute():
        return None
    return path if path.is_file() else None


def _plain_inside(folder: Path, path: Path) -> bool:
    """No part below `folder` is a symlink, the file is regular and resolves inside it."""
    try:
        relative = path.relative_to(folder)
    except ValueError:
        return False
    current = folder
    for part in relative.parts:
        if part in ("", ".", ".."):
            return False
        current = current / part
        if current.is_symlink():
            return False
    return path.is_file() and path.resolve().is_relative_to(folder.resolve())
