"""A sweep laid out as a grid: its last swept key across, the other keys down, one cell per
run, so the outputs of a sweep can be compared at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cosmos_driver.batch_view import RunRow


@dataclass(frozen=True)
class SweepGrid:
    """One sweep: the job entry it came from, its swept keys, and the runs by row and column."""

    job: str
    row_keys: list[str]
    column_key: str
    columns: list[Any]
    rows: list[tuple[tuple[Any, ...], list[RunRow | None]]]

    @property
    def cells(self) -> int:
        return sum(1 for _, cells in self.rows for cell in cells if cell is not None)


def sweep_grids(rows: list[RunRow]) -> list[SweepGrid]:
    """A grid per swept job entry of the batch, in batch-file order (runs of no sweep and
    dependent runs are left out)."""
    groups: dict[tuple[str, tuple[str, ...]], list[RunRow]] = {}
    for row in rows:
        if row.sweep and row.kind == "inference":
            keys = tuple(row.sweep)
            groups.setdefault((_entry_name(row.job_name, keys[0]), keys), []).append(row)
    return [_grid(job, list(keys), members) for (job, keys), members in groups.items()]


def _entry_name(job_name: str, first_key: str) -> str:
    """The job entry's own name: a swept job is named `<name>.<key>-<value>…`."""
    cut = job_name.rfind(f".{first_key}-")
    return job_name[:cut] if cut > 0 else job_name


def _grid(job: str, keys: list[str], members: list[RunRow]) -> SweepGrid:
    column_key, row_keys = keys[-1], keys[:-1]
    columns = _distinct(row.sweep[column_key] for row in members)
    labels = _distinct(tuple(row.sweep[k] for k in row_keys) for row in members)
    cells = {(tuple(r.sweep[k] for k in row_keys), r.sweep[column_key]): r for r in members}
    table = [(label, [cells.get((label, column)) for column in columns]) for label in labels]
    return SweepGrid(job, row_keys, column_key, columns, table)


def _distinct(values: Any) -> list[Any]:
    """Each value once, in the order first seen (the batch file's order)."""
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
