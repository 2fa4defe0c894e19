"""Load YAML and remember the line of every mapping key and list item, so validation errors
can say `file:line: field: problem`.

The files are untrusted: a bad one gives a one-line ValidationError, quickly and in bounded
memory, never a traceback (limits: docs/batch-file.md#limits)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cosmos_driver.errors import ValidationError
from cosmos_driver.yaml_convert import LIMITS, MAX_DEPTH, TOO_DEEP, Converter, Refusal

__all__ = ["LIMITS", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "MIN_EXPANSION", "load_lined"]

log = logging.getLogger(__name__)

# The largest file read at all, the most nodes (keys, values, list items) a document may hold
# or expand to through aliases and merge keys, and how deeply lists and mappings may nest.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NODES = 2_000_000
# Aliases may expand a document to as many nodes as it has bytes, or this many if that is more
# (a few bytes of `*a` must not become a million nodes), and never past MAX_NODES.
MIN_EXPANSION = 100_000

_TOO_MANY = f"holds more than {MAX_NODES:,} YAML nodes ({LIMITS})"
_CYCLE = "an alias refers to itself: a list or mapping cannot contain itself"
_BOM = b"\xef\xbb\xbf"
# What PyYAML's reader refuses: control characters other than tab and line breaks, and others.
_NOT_YAML_TEXT = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class LinedDocument:
    """A parsed document and the 1-based line of each dotted path (`jobs[0].prompt`)."""

    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        """The line of `path`, or of its nearest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = _parent(path)
        return None


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def load_lined(path: Path) -> LinedDocument:
    """Parse `path`; any problem with it becomes a one-line ValidationError naming file and line."""
    try:
        data = _read(path)
        document = _document(_decoded(data))
    except Refusal as refusal:
        where = f"{path}:{refusal.line}" if refusal.line else str(path)
        raise ValidationError(f"{where}: {_one_line(refusal.problem)}") from refusal
    except RecursionError as exc:
        raise ValidationError(f"{path}: {TOO_DEEP}") from exc
    log.debug("read %s: %d bytes, %d lined paths", path, len(data), len(document.lines))
    return document


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines())


# --- the file --------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    """The file's bytes, unless it is not a regular file or is larger than MAX_FILE_BYTES."""
    try:
        _check_kind(path.stat())  # before opening: opening a FIFO would wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as stream:
            _check_kind(os.fstat(stream.fileno()))  # the path may name another file by now
            data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise Refusal(None, f"cannot read ({getattr(exc, 'strerror', None) or exc})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise Refusal(None, _too_large(len(data)))
    return data


def _check_kind(status: os.stat_result) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise Refusal(None, "is a folder, not a YAML file")
    if not stat.S_ISREG(status.st_mode):
        raise Refusal(None, "is not a regular file (a pipe, socket or device); name a YAML file")
    if status.st_size > MAX_FILE_BYTES:
        raise Refusal(None, _too_large(status.st_size))


def _too_large(size: int) -> str:
    return (
        f"is too large: {size:,} bytes, more than the {MAX_FILE_BYTES // 2**20} MiB "
        f"a YAML file may be ({LIMITS})"
    )


def _decoded(data: bytes) -> str:
    """The file as text: UTF-8 (a BOM is fine), without NUL bytes or characters YAML forbids."""
    data = data.removeprefix(_BOM)
    nul = data.find(b"\0")
    if nul >= 0:
        line, column = _position(data, nul)
        raise Refusal(line, f"looks binary: a NUL byte at column {column}; YAML is UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise Refusal(
            line,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
            "save it as UTF-8",
        ) from exc
    bad = _NOT_YAML_TEXT.search(text)
    if bad:
        start = bad.start()
        raise Refusal(
            text.count("\n", 0, start) + 1,
            f"looks binary: character U+{ord(bad.group()):04X} at column "
            f"{start - text.rfind(chr(10), 0, start)} is not allowed in YAML",
        )
    return text


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """The 1-based line and column (in characters) of byte `offset`."""
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


# --- composing -------------------------------------------------------------------------------


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's pure-Python loader, refusing past MAX_NODES nodes or about MAX_DEPTH levels while
    it composes: its composer recurses, and it has no limits of its own."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node, counted, and refused past the limits."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise Refusal(None, _TOO_MANY)
        if self.depth > MAX_DEPTH:  # exact depths are checked while converting
            raise Refusal(self.peek_event().start_mark.line + 1, TOO_DEEP)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# libyaml's loader is many times faster; its parser stops at 1,000 levels by itself.
_LOADER: type = getattr(yaml, "CSafeLoader", _GuardedLoader)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: composing makes millions of objects, and the passes
    it would make meanwhile make a large file several times slower to load."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _document(text: str) -> LinedDocument:
    document = LinedDocument(None)
    with _gc_paused():
        node = _compose(text)
        if node is not None:
            if "*" in text:  # an alias needs one: without, nothing is shared or circular
                budget = min(MAX_NODES, max(MIN_EXPANSION, len(text)))
                _Expansion(budget).size(node, 1, node.start_mark.line + 1)
            document.data = Converter(document.lines).convert(node, "", 1)
    return document


def _compose(text: str) -> yaml.Node | None:
    """The document's node graph, refused when it is not valid YAML or too large."""
    try:
        _count_events(text)
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise Refusal(mark.line + 1 if mark else None, _yaml_problem(exc)) from exc


def _count_events(text: str) -> None:
    """Refuse more than MAX_NODES parser events (at least one per node) before composing."""
    if not hasattr(_LOADER, "raw_parse"):
        return  # _GuardedLoader counts as it composes
    parser = _LOADER(text)
    try:
        events = parser.raw_parse()  # counted in C: no Python objects made
    finally:
        parser.dispose()
    if events > MAX_NODES:
        raise Refusal(None, _TOO_MANY)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = str(getattr(exc, "problem", None) or exc)
    context = str(getattr(exc, "context", None) or "")
    if problem == "but found another document":
        return "holds more than one YAML document: a second one starts here; keep one"
    if "maximum nesting depth" in problem:
        return TOO_DEEP
    first = getattr(exc, "context_mark", None)
    if "duplicate anchor" in context and first:
        return f"not valid YAML ({context.split(';')[0]}, first on line {first.line + 1})"
    return f"not valid YAML ({problem})"


# --- checking and converting the node graph --------------------------------------------------


class _Expansion:
    """Sizes the node graph once per distinct node: refuses alias cycles and documents whose
    aliases expand past `budget` nodes, before anything is expanded."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.sizes: dict[int, int] = {}
        self.open: set[int] = set()

    def size(self, node: yaml.Node, depth: int, line: int) -> int:
        """The nodes `node` stands for with aliases expanded; `line` is blamed for a cycle."""
        if isinstance(node, yaml.ScalarNode):
            return 1
        key = id(node)
        known = self.sizes.get(key)
        if known is not None:
            return known
        if key in self.open:
            raise Refusal(line, _CYCLE)
        if depth > MAX_DEPTH:
            raise Refusal(node.start_mark.line + 1, TOO_DEEP)
        self.open.add(key)
        total = 1 + sum(self.size(child, depth + 1, where) for child, where in _children(node))
        self.open.discard(key)
        if total > self.budget:
            raise Refusal(
                node.start_mark.line + 1,
                f"the document expands too much: its aliases make more than {self.budget:,} "
                f"nodes ({LIMITS})",
            )
        self.sizes[key] = total
        return total


def _children(node: yaml.Node) -> Iterator[tuple[yaml.Node, int]]:
    """A collection's child nodes, each with the line of its key or of its list."""
    if isinstance(node, yaml.SequenceNode):
        line = node.start_mark.line + 1
        for item in node.value:
            yield item, line
        return
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        yield key_node, line
        yield value_node, line
