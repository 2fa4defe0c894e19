"""Variables for a playbook run, written so that Ansible never templates them.

Ansible renders every string of its extra vars as a Jinja2 template: a batch file's
`env: {X: "{{ lookup('pipe', 'id') }}"}` would run a command on the machine that runs the
driver. Nothing the driver passes is meant as a template, so every string is written with
YAML's `!unsafe` tag, which Ansible keeps literal however often it is combined or passed on
(docs/security.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

UNSAFE_TAG = "!unsafe"


class _UnsafeDumper(yaml.SafeDumper):
    """A safe dumper that tags every string scalar `!unsafe` and writes no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_unsafe(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(UNSAFE_TAG, text, style='"')


_UnsafeDumper.add_representer(str, _represent_unsafe)


def dump_unsafe(extravars: dict[str, Any]) -> str:
    """YAML text of `extravars` with every string value tagged `!unsafe`."""
    return yaml.dump(
        _keys_as_plain(extravars),
        Dumper=_UnsafeDumper,
        sort_keys=True,
        allow_unicode=True,
        width=1 << 16,
    )


def write_unsafe(path: Path, extravars: dict[str, Any]) -> None:
    """Write `extravars` where ansible-runner reads them (`env/extravars`), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_unsafe(extravars), encoding="utf-8")
    path.chmod(0o600)


class _PlainKey(str):
    """A mapping key, dumped without a tag: Ansible cannot use an unsafe object as a variable
    name, and keys are ours (role-prefixed) or validated env names, never templates."""

    __slots__ = ()


_UnsafeDumper.add_representer(_PlainKey, yaml.SafeDumper.represent_str)


def _keys_as_plain(value: Any) -> Any:
    """The same data with mapping keys marked so the dumper leaves them untagged."""
    if isinstance(value, dict):
        return {_plain(k): _keys_as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_keys_as_plain(item) for item in value]
    return value


def _plain(key: Any) -> Any:
    return _PlainKey(key) if isinstance(key, str) else key
