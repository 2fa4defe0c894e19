"""The job model: a validated Job and Batch with their defaults, shared by the parser, the
profiles and the run code (it imports none of them, so no import cycle goes through it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_driver import ids

DEFAULT_TIMEOUT = 4 * 3600
# The model profile of a job that names none (cosmos_driver.profiles checks it is one).
DEFAULT_PROFILE = "transfer1"


@dataclass(frozen=True)
class Job:
    """One validated job: what to run and with which parameters."""

    name: str
    prompt: str
    inputs: dict[str, Path]
    controls: dict[str, float]
    sampling: dict[str, Any] = field(default_factory=dict)
    gpus: int = 1
    timeout: int = DEFAULT_TIMEOUT
    retries: int = 0
    env: dict[str, str] = field(default_factory=dict)
    profile: str = DEFAULT_PROFILE
    # A 4K upscale run follows this job's run, on its host (cosmos_driver.upscale).
    upscale: bool = False
    # Transfer1's prompt upsampler rewrites the prompt before inference; the run record keeps
    # the prompt it ended with (RunRecord.enhanced_prompt).
    enhance: bool = False
    # The values of a sweep's swept keys for this job (`{}` for a job that is no sweep), so
    # views can lay a sweep out as a grid.
    sweep: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """A validated batch file: its name, where it came from, and its (expanded) jobs."""

    name: str
    source: Path
    jobs: tuple[Job, ...]
    # Things worth knowing that do not stop the batch, each said once with a count.
    warnings: tuple[str, ...] = ()
    # How many job entries the file has (its sweeps expand them into `jobs`).
    entries: int = 0

    @property
    def batch_id(self) -> str:
        return ids.batch_id(self.name)

    def run_id(self, job: Job) -> str:
        return ids.run_id(self.batch_id, job.name)

    @property
    def run_count(self) -> int:
        """Runs the batch plans: one per job, one more per job with an upscale."""
        return sum(2 if job.upscale else 1 for job in self.jobs)


def job_parameters(job: Job) -> dict[str, Any]:
    """Every parameter of a job worth showing beside its output; never its `env`."""
    return {
        "profile": job.profile,
        "controls": dict(job.controls),
        **job.sampling,
        "gpus": job.gpus,
        "timeout": job.timeout,
        "retries": job.retries,
        "upscale": job.upscale,
        "enhance": job.enhance,
    }
