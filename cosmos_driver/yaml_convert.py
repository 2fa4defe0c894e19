"""Turns a composed, checked YAML node graph into Python data, noting the 1-based line of
every mapping key and list item; refuses what the batch files do not use (tags, non-text
keys, duplicate keys, odd merges, huge numbers) with the line it is on."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor

LIMITS = "docs/batch-file.md#limits"
MAX_DEPTH = 64
# Longer numbers are refused: Python's int() stops there, and `1:2:3…` (base 60) is quadratic.
MAX_NUMBER_CHARS = 4_300
TOO_DEEP = f"lists and mappings nest more than {MAX_DEPTH} levels deep ({LIMITS})"
_CORE = "tag:yaml.org,2002:"
_MAP, _SEQ, _SET, _STR = (f"{_CORE}{name}" for name in ("map", "seq", "set", "str"))
_MERGE, _INT, _FLOAT = (f"{_CORE}{name}" for name in ("merge", "int", "float"))
# `<<` outside a key and `=` have no constructor in PyYAML; here they are text.
_TEXT_TAGS = frozenset((_STR, _MERGE, f"{_CORE}value"))


class Refusal(Exception):
    """A problem with the file, at a 1-based `line` when one applies."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


_Entry = tuple[yaml.Node, yaml.Node]


class Converter:
    """Turns a checked node graph into Python data, noting the line of every key and item."""

    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines
        self.constructor = SafeConstructor()

    def convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        """The data of `node` at dotted `path`, `depth` levels down (the top is 1)."""
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if depth > MAX_DEPTH:
            raise Refusal(node.start_mark.line + 1, TOO_DEEP)
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
            raise Refusal(node.start_mark.line + 1, TOO_DEEP)
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
            raise Refusal(
                node.start_mark.line + 1, "a mapping key must be plain text, not a list or mapping"
            )
        return self.scalar(node)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        """A scalar's value, as PyYAML's safe loader makes it."""
        if node.tag in _TEXT_TAGS:
            return node.value
        if node.tag in (_INT, _FLOAT) and len(node.value) > MAX_NUMBER_CHARS:
            raise Refusal(
                node.start_mark.line + 1,
                f"a number longer than {MAX_NUMBER_CHARS:,} characters; "
                "quote it to keep it as text",
            )
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception as exc:  # constructors raise ConstructorError, ValueError, KeyError, …
            raise Refusal(node.start_mark.line + 1, _scalar_problem(node, exc)) from exc


def _duplicate(key: Any, first: yaml.Node, again: yaml.Node) -> Refusal:
    return Refusal(
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
    raise Refusal(
        key_node.start_mark.line + 1,
        "`<<` merges a mapping or a list of mappings (`<<: *defaults`, `<<: [*a, *b]`), "
        "nothing else",
    )


def _check_tag(node: yaml.Node, expected: str) -> None:
    if node.tag != expected:
        raise Refusal(node.start_mark.line + 1, _unsupported(node.tag))


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
