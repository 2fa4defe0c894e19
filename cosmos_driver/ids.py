"""Stable, readable ids: a re-run of the same batch file finds the same batch and runs."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9]+")


def slug(text: str, limit: int = 40) -> str:
    """Lower-case letters, digits and single dashes: safe in paths and container names."""
    cleaned = _UNSAFE.sub("-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "x"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def batch_id(batch_name: str) -> str:
    """`<slug>-<hash8>` of the batch name (the hash keeps distinct names apart)."""
    return f"{slug(batch_name)}-{_digest(batch_name)}"


def run_id(batch: str, job_name: str) -> str:
    """`<batch slug>.<job slug>-<hash8>`: stable for a batch id and a job name."""
    return f"{batch.rsplit('-', 1)[0]}.{slug(job_name)}-{_digest(batch, job_name)}"
