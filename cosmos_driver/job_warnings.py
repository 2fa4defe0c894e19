"""Warnings that many jobs of a batch share, each said once with a count: the jobs of a
sweep share their inputs and prompt, and 10,000 copies of one warning would bury the rest."""

from __future__ import annotations


class JobWarnings:
    """Collects (job, warning) pairs of one batch file; `lines()` says each warning once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.jobs: dict[str, list[str]] = {}

    def add(self, job_name: str, text: str) -> None:
        self.jobs.setdefault(text, []).append(job_name)

    def lines(self) -> list[str]:
        """One line per warning; a shared one names how many jobs it applies to."""
        return [
            f"{self.source}: job {names[0]}: {text}"
            if len(names) == 1
            else f"{self.source}: {len(names):,} jobs (job {names[0]} and others): {text}"
            for text, names in self.jobs.items()
        ]
