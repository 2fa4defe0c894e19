"""The values a run's phases pass around (prepared runs, placements, exits, verdicts) and
the exceptions that end a phase, shared by the run code, the scheduler and its backends."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from cosmos_driver import host_contract
from cosmos_driver.model import Job
from cosmos_driver.profiles import Profile, profile_named
from cosmos_driver.records import FailureReason


@dataclass(frozen=True)
class PreparedRun:
    """A job made ready to send: its ids, its inputs by content hash, its local spec file."""

    run_id: str
    batch_id: str
    job: Job
    input_names: dict[str, str]
    spec_path: Path
    # A dependent run (4K upscale): the run whose outputs it reads on the same host.
    parent_id: str | None = None

    @property
    def container_name(self) -> str:
        return host_contract.container_name(self.run_id)

    @functools.cached_property
    def profile(self) -> Profile:
        """The job's model profile, looked up once: its spec, command and verdict rules."""
        return profile_named(self.job.profile)


@dataclass(frozen=True)
class RunRef:
    """A run known only by its record (kill, logs): enough for stop, peek and collect."""

    run_id: str
    batch_id: str

    @property
    def container_name(self) -> str:
        return host_contract.container_name(self.run_id)


AnyRun = PreparedRun | RunRef


@dataclass(frozen=True)
class Placement:
    """Where a run goes: a host, its GPU devices, and the containers now holding them."""

    host: str
    devices: tuple[str, ...] = ("0",)
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """Why a run failed (or was cancelled): the reason and a sentence for people."""

    reason: FailureReason
    detail: str


@dataclass(frozen=True)
class Exit:
    """How the container ended; `collected` when the wait phase collected it already."""

    finished: bool
    exit_code: int | None = None
    collected: bool = False


class DriverStopping(Exception):
    """The driver is stopping (Ctrl-C): leave the run and its container as they are."""


class HostDown(Exception):
    """A host stayed unreachable through every retry of a phase."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"{host}: {detail}")
        self.host = host
        self.detail = detail


class PhaseFailed(Exception):
    """A phase failed for a reason that retrying will not fix."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict
