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
from yaml.constructor import SafeConstructor

from cosmos_driver.errors import ValidationError

log = logging.getLogger(__name__)

LIMITS = "docs/batch-file.md#limits"
# The largest file read at all, the most nodes (keys, values, list items) a document may hold
# or expand to through aliases and merge keys, and how deeply lists and mappings may nest.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NODES = 2_000_000
MAX_DEPTH = 64
# Aliases may expand a document to as many nodes as it has bytes, or this many if that is more
# (a few bytes of `*a` must not become a million nodes), and never past MAX_NODES.
MIN_EXPANSION = 100_000
# Longer numbers are refused: Python's int() stops there, and `1:2:3…` (base 60) is quadratic.
MAX_NUMBER_CHARS = 4_300

_TOO_DEEP = f"lists and mappings nest more than {MAX_DEPTH} levels deep ({LIMITS})"
_TOO_MANY = f"holds more than {MAX_NODES:,} YAML nodes ({LIMITS})"
_CYCLE = "an alias refers to itself: a list or mapping cannot contain itself"
_CORE = "tag:yaml.org,2002:"
_MAP, _SEQ, _SET, _STR = (f"{_CORE}{name}" for name in ("map", "seq", "set", "str"))
_MERGE, _INT, _FLOAT = (f"{_CORE}{name}" for name in ("merge", "int", "float"))
# `<<` outside a key and `=` have no constructor in PyYAML; here they are text.
_TEXT_TAGS = frozenset((_STR, _MERGE, f"{_CORE}value"))
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


class _Refusal(Exception):
    """A problem with the file, at a 1-based `line` when one applies."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def load_lined(path: Path) -> LinedDocument:
    """Parse `path`; any problem with it becomes a one-line ValidationError naming file and line."""
    try:
        data = _read(path)
        document = _document(_decoded(data))
    except _Refusal as refusal:
        where = f"{path}:{refusal.line}" if refusal.line else str(path)
        raise ValidationError(f"{where}: {_one_line(refusal.problem)}") from refusal
    except RecursionError as exc:
        raise ValidationError(f"{path}: {_TOO_DEEP}") from exc
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
        raise _Refusal(None, f"cannot read ({getattr(exc, 'strerror', None) or exc})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise _Refusal(None, _too_large(len(data)))
    return data


def _check_kind(status: os.stat_result) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise _Refusal(None, "is a folder, not a YAML file")
    if not stat.S_ISREG(status.st_mode):
        raise _Refusal(None, "is not a regular file (a pipe, socket or device); name a YAML file")
    if status.st_size > MAX_FILE_BYTES:
        raise _Refusal(None, _too_large(status.st_size))


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
        raise _Refusal(line, f"looks binary: a NUL byte at column {column}; YAML is UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise _Refusal(
            line,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
            "save it as UTF-8",
        ) from exc
    bad = _NOT_YAML_TEXT.search(text)
    if bad:
        start = bad.start()
        raise _Refusal(
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
            raise _Refusal(None, _TOO_MANY)
        if self.depth > MAX_DEPTH:  # exact depths are checked while converting
            raise _Refusal(self.peek_event().start_mark.line + 1, _TOO_DEEP)
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
            document.data = _Converter(document.lines).convert(node, "", 1)
    return document


def _compose(text: str) -> yaml.Node | None:
    """The document's node graph, refused when it is not valid YAML or too large."""
    try:
        _count_events(text)
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _Refusal(mark.line + 1 if mark else None, _yaml_problem(exc)) from exc


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
        raise _Refusal(None, _TOO_MANY)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = str(getattr(exc, "problem", None) or exc)
    context = str(getattr(exc, "context", None) or "")
    if problem == "but found another document":
        return "holds more than one YAML document: a second one starts here; keep one"
    if "maximum nesting depth" in problem:
        return _TOO_DEEP
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
            raise _Refusal(line, _CYCLE)
        if depth > MAX_DEPTH:
            raise _Refusal(node.start_mark.line + 1, _TOO_DEEP)
        self.open.add(key)
        total = 1 + sum(self.size(child, depth + 1, where) for child, where in _children(node))
        self.open.discard(key)
        if total > self.budget:
            raise _Refusal(
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


_Entry = tuple[yaml.Node, yaml.Node]


class _Converter:
    """Turns a checked node graph into Python data, noting the line of every key and item."""

    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines
        self.constructor = SafeConstructor()

    def convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        """The data of `node` at dotted `path`, `depth` levels down (the top is 1)."""
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if depth > MAX_DEPTH:
            raise _Refusal(node.start_mark.line + 1, _TOO_DEEP)
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, path, depth)
        if node.tag == _SET:
            return {self.key(key_node) for key_node, _ in node.value}
        result = {}
        for key, (key_node, value_node) in self._entries(node, depth).items():
            child = f"{path}.{key}" if path else str(key)
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self.convert(value_node, child, depth + 1)
        return result

    def _sequence(self, node: yaml.SequenceNode, path: str, depth: int) -> list[Any]:
        _check_tag(node, _SEQ)
        items = []
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            self.lines.setdefault(child, item.start_mark.line + 1)
            items.append(self.convert(item, child, depth + 1))
        return items

    def _entries(self, node: yaml.MappingNode, depth: int) -> dict[Any, _Entry]:
        """A mapping's entries by key, merge keys applied as YAML 1.1 says: its own keys win over
        merged ones, and a mapping earlier in `<<: [*a, *b]` over a later one."""
        if depth > MAX_DEPTH:
            raise _Refusal(node.start_mark.line + 1, _TOO_DEEP)
        _check_tag(node, _MAP)
        own, merged = self._own_entries(node)
        if not merged:
            return own
        entries: dict[Any, _Entry] = {}
        for source in merged:
            for key, entry in self._entries(source, depth + 1).items():
                entries.setdefault(key, entry)
        entries.update(own)
        return entries

    def _own_entries(
        self, node: yaml.MappingNode
    ) -> tuple[dict[Any, _Entry], list[yaml.MappingNode]]:
        """The entries a mapping spells out, and the mappings its `<<` key merges."""
        own: dict[Any, _Entry] = {}
        merge: yaml.Node | None = None
        merged: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE and isinstance(key_node, yaml.ScalarNode):
                if merge is not None:
                    raise _duplicate("<<", merge, key_node)
                merge, merged = key_node, _merge_sources(key_node, value_node)
                continue
            key = self.key(key_node)
            if key in own:
                raise _duplicate(key, own[key][0], key_node)
            own[key] = (key_node, value_node)
        return own, merged

    def key(self, node: yaml.Node) -> Any:
        """A mapping key's value: a scalar, never a list or mapping."""
        if not isinstance(node, yaml.ScalarNode):
            raise _Refusal(
                node.start_mark.line + 1, "a mapping key must be plain text, not a list or mapping"
            )
        return self.scalar(node)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        """A scalar's value, as PyYAML's safe loader makes it."""
        if node.tag in _TEXT_TAGS:
            return node.value
        if node.tag in (_INT, _FLOAT) and len(node.value) > MAX_NUMBER_CHARS:
            raise _Refusal(
                node.start_mark.line + 1,
                f"a number longer than {MAX_NUMBER_CHARS:,} characters; "
                "quote it to keep it as text",
            )
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception as exc:  # constructors raise ConstructorError, ValueError, KeyError, …
            raise _Refusal(node.start_mark.line + 1, _scalar_problem(node, exc)) from exc


def _duplicate(key: Any, first: yaml.Node, again: yaml.Node) -> _Refusal:
    return _Refusal(
        again.start_mark.line + 1,
        f"duplicate key '{_shown(key)}' (first on line {first.start_mark.line + 1})",
    )


def _merge_sources(key_node: yaml.Node, value: yaml.Node) -> list[yaml.MappingNode]:
    """The mappings `<<:` merges, in order."""
    if isinstance(value, yaml.MappingNode):
        return [value]
    if isinstance(value, yaml.SequenceNode) and all(
        isinstance(item, yaml.MappingNode) for item in value.value
    ):
        return list(value.value)
    raise _Refusal(
        key_node.start_mark.line + 1,
        "`<<` merges a mapping or a list of mappings (`<<: *defaults`, `<<: [*a, *b]`), "
        "nothing else",
    )


def _check_tag(node: yaml.Node, expected: str) -> None:
    if node.tag != expected:
        raise _Refusal(node.start_mark.line + 1, _unsupported(node.tag))


def _unsupported(tag: str) -> str:
    return f"unsupported tag '{_short_tag(tag)}'; use plain text, numbers, lists and mappings"


def _scalar_problem(node: yaml.ScalarNode, exc: Exception) -> str:
    if node.tag not in SafeConstructor.yaml_constructors:
        return _unsupported(node.tag)
    reason = getattr(exc, "problem", None) or f"{type(exc).__name__}: {exc}"
    return (
        f"cannot read {_shown(node.value)} as {_short_tag(node.tag)} ({reason}); "
        "quote it to keep it as text"
    )


def _short_tag(tag: str) -> str:
    return _shown(tag.replace(_CORE, "!!", 1) if tag.startswith(_CORE) else tag)


def _shown(value: Any, longest: int = 64) -> str:
    """A key or value as a message shows it: as it is when short and printable, else its repr,
    cut."""
    text = str(value)
    if len(text) <= longest and text.isprintable():
        return text
    shown = repr(text[:longest])
    return shown + "…" if len(text) > longest else shown
