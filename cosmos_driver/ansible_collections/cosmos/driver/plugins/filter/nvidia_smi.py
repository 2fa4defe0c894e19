"""Parse `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` output into dicts.

A filter, not Jinja string munging: GPU names hold spaces, values are `, `-separated, and a
line of the wrong shape must be an error that names it, not a silently shifted column."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# Fields whose values are whole numbers (memory in MiB with nounits).
INTEGER_FIELDS = {"index", "count", "memory.total", "memory.used", "memory.free"}


def key(field: str) -> str:
    """The dict key of a query field: `memory.total` -> `memory_total`."""
    return field.replace(".", "_")


def parse_row(line: str, fields: list[str]) -> dict[str, object]:
    values = [v.strip() for v in line.split(", ")]
    if len(values) != len(fields):
        raise AnsibleFilterError(
            f"nvidia-smi line {line!r} has {len(values)} values for {len(fields)} fields"
        )
    row: dict[str, object] = {}
    for field, value in zip(fields, values, strict=True):
        if field in INTEGER_FIELDS:
            if not value.isdigit():
                raise AnsibleFilterError(f"nvidia-smi {field} is {value!r}, not a number")
            row[key(field)] = int(value)
        else:
            row[key(field)] = value
    return row


def nvidia_smi_csv(stdout: str, fields: list[str]) -> list[dict[str, object]]:
    """One dict per GPU line of csv,noheader,nounits output, keyed by `key(field)`."""
    return [parse_row(line, list(fields)) for line in stdout.splitlines() if line.strip()]


class FilterModule:
    """cosmos_health's filters."""

    def filters(self):
        return {"cosmos_nvidia_smi_csv": nvidia_smi_csv}
