"""The free space `df -Pk PATH` reports, in GB, for cosmos_preflight and cosmos_health.

df's last line's fourth column is the free space in KiB. A df that printed nothing (it
failed, or was skipped) gives 0.0: the roles report its rc and stderr instead."""

from __future__ import annotations

from collections.abc import Mapping


def df_free_gb(df: Mapping) -> float:
    """Free GB (10**9 bytes, one decimal) from a registered `df -Pk` result."""
    lines = df.get("stdout_lines", ["- - - 0"]) or [""]
    fields = str(lines[-1]).split()
    kib = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else 0
    return round(kib * 1024 / 1000000000, 1)


class FilterModule:
    """The disk filter of cosmos_preflight and cosmos_health."""

    def filters(self):
        return {"cosmos_df_free_gb": df_free_gb}
