"""Checkpoint manifests: what a model profile needs on a host, as (path, size, sha256) entries.

A manifest is a YAML file per profile (manifests/<profile>.yaml). Loading validates every
entry and reports every problem at once as `file:line: where: what, and the fix`; the host
module cosmos.driver.cosmos_checkpoints takes the entries as plain dicts."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from cosmos_driver import content
from cosmos_driver.errors import ValidationError
from cosmos_driver.store import write_bytes_atomic
from cosmos_driver.yaml_lines import LinedDocument, load_lined

SCHEMA = 1
MANIFESTS = content.MANIFESTS
# The host module keeps its stamp here, under the checkpoint directory; never a manifest path.
STAMP_NAME = ".cosmos-verify-stamp.json"
SHA256 = re.compile(r"[0-9a-f]{64}")
TOP_FIELDS = ("schema", "profile", "ignore", "files")
ENTRY_FIELDS = ("path", "size", "sha256")
HEADER = (
    "# Checkpoint manifest: every file the profile needs under the checkpoint directory.\n"
    "# Written by `invoke checkpoints.manifest` from a verified tree; format: manifests/README.md\n"
)


@dataclass(frozen=True)
class ManifestEntry:
    """One file: its path relative to the checkpoint directory, its size and its sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A profile's checkpoint files, sorted by path, and the globs verification tolerates."""

    profile: str
    files: tuple[ManifestEntry, ...]
    ignore: tuple[str, ...] = ()
    source: Path | None = field(default=None, compare=False)


def manifest_path(profile: str, folder: Path = MANIFESTS) -> Path:
    """Where the manifest of `profile` lives in this checkout."""
    return folder / f"{profile}.yaml"


class _Problems:
    """Collects `file:line: where: what` lines."""

    def __init__(self, source: Path, document: LinedDocument) -> None:
        self.source = source
        self.document = document
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        line = self.document.line_of(where)
        place = f"{self.source}:{line}" if line else str(self.source)
        self.items.append(f"{place}: {where}: {message}")

    def unknown_keys(self, mapping: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.add(f"{prefix}{key}", f"unknown key; valid: {', '.join(allowed)}")


def load_manifest(path: Path) -> Manifest:
    """Parse and validate a manifest; raise ValidationError listing every problem."""
    document = load_lined(path)
    data = document.data
    if not isinstance(data, dict):
        raise ValidationError(
            f"{path}: a manifest is a mapping with schema, profile, ignore and files "
            "(see manifests/README.md)"
        )
    problems = _Problems(path, document)
    problems.unknown_keys(data, TOP_FIELDS, "")
    if data.get("schema") != SCHEMA:
        problems.add("schema", f"must be {SCHEMA}, got {data.get('schema')!r}")
    profile = data.get("profile")
    if not isinstance(profile, str) or not profile.strip():
        problems.add("profile", "required: the model profile's name, for example transfer1")
    ignore = _ignore(data.get("ignore", []), problems)
    files = _entries(data.get("files"), ignore, problems)
    if problems.items:
        raise ValidationError(problems.items)
    return Manifest(str(profile), tuple(sorted(files, key=_by_path)), ignore, path)


def _by_path(entry: ManifestEntry) -> str:
    return entry.path


def _ignore(raw: Any, problems: _Problems) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(g, str) and g for g in raw):
        problems.add("ignore", 'must be a list of globs, for example [".cache/**"]')
        return ()
    return tuple(raw)


def _entries(raw: Any, ignore: tuple[str, ...], problems: _Problems) -> list[ManifestEntry]:
    if not isinstance(raw, list):
        problems.add("files", "required: a list of {path, size, sha256} entries ([] when none)")
        return []
    entries: list[ManifestEntry] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        where = f"files[{index}]"
        if not isinstance(item, dict):
            problems.add(where, "an entry is a mapping with path, size and sha256")
            continue
        problems.unknown_keys(item, ENTRY_FIELDS, f"{where}.")
        entry = _entry(item, where, ignore, problems)
        if entry is None:
            continue
        if entry.path in seen:
            problems.add(f"{where}.path", f"{entry.path} is listed twice (also {seen[entry.path]})")
            continue
        seen[entry.path] = where
        entries.append(entry)
    return entries


def _entry(
    item: dict[str, Any], where: str, ignore: tuple[str, ...], problems: _Problems
) -> ManifestEntry | None:
    checks = (
        (f"{where}.path", _path_problem(item.get("path"), ignore)),
        (f"{where}.size", _size_problem(item.get("size"))),
        (f"{where}.sha256", _sha256_problem(item.get("sha256"))),
    )
    for key, message in checks:
        if message:
            problems.add(key, message)
    if any(message for _, message in checks):
        return None
    return ManifestEntry(item["path"], item["size"], item["sha256"])


def _path_problem(value: Any, ignore: tuple[str, ...]) -> str | None:
    """A path is relative, POSIX, normalised, without '..', and not an ignored one."""
    if not isinstance(value, str) or not value:
        return "required: the file's path relative to the checkpoint directory"
    if value.startswith("/"):
        return f"{value!r} is absolute; write it relative to the checkpoint directory"
    parts = value.split("/")
    if ".." in parts:
        return f"{value!r} contains '..'; write the path inside the checkpoint directory"
    if "\\" in value or PurePosixPath(value).as_posix() != value or "." in parts:
        return f"{value!r} is not a plain POSIX path; use '/' and no '.' or empty parts"
    if value == STAMP_NAME:
        return f"{value!r} is the verification stamp, not a checkpoint; remove the entry"
    hit = next((g for g in ignore if fnmatch.fnmatchcase(value, g)), None)
    if hit:
        return f"{value!r} matches the ignore glob {hit!r}; remove the entry or the glob"
    return None


def _size_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"must be the file's size in bytes (a whole number >= 0), got {value!r}"
    return None


def _sha256_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        return f"must be 64 lowercase hex digits (as sha256sum prints them), got {value!r}"
    return None


def write_manifest(
    path: Path, profile: str, entries: list[ManifestEntry], ignore: tuple[str, ...] = ()
) -> None:
    """Write a manifest atomically, entries sorted by path, in the format load_manifest reads."""
    body = {
        "schema": SCHEMA,
        "profile": profile,
        "ignore": list(ignore),
        "files": [
            {"path": e.path, "size": e.size, "sha256": e.sha256}
            for e in sorted(entries, key=_by_path)
        ],
    }
    text = HEADER + yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=120)
    write_bytes_atomic(path, text.encode("utf-8"))


def manifest_entries_for_module(manifest: Manifest) -> list[dict[str, Any]]:
    """The `files` option of the cosmos_checkpoints module."""
    return [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in manifest.files]


def entries_from_module(files: list[dict[str, Any]]) -> list[ManifestEntry]:
    """Entries from the module's action=manifest result (`files`), for write_manifest."""
    return [ManifestEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in files]
