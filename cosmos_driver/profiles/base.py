"""What every model profile provides: its spec builder, command line, expected outputs,
guardrail test and batch-file rules, and the container paths they all refer to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_driver.host_contract import SPEC_FILE

if TYPE_CHECKING:
    from cosmos_driver.model import Job


@dataclass(frozen=True)
class ContainerPaths:
    """Mount points inside the container; the cosmos_job role mounts the host folders there."""

    run: str = "/cosmos/run"
    inputs: str = "/cosmos/inputs"
    checkpoints: str = "/cosmos/checkpoints"
    # A dependent run's view of its parent's outputs/ on the same host (read-only).
    parent: str = "/cosmos/parent"

    @property
    def outputs(self) -> str:
        return f"{self.run}/outputs"

    @property
    def spec(self) -> str:
        return f"{self.run}/{SPEC_FILE}"


@dataclass(frozen=True)
class RunEnd:
    """What a finished container left: its exit code, its log, and the names of the output
    files that came back (None when the collect failed, so nothing can be said of them)."""

    exit_code: int | None
    log_lines: list[str]
    outputs: frozenset[str] | None


# A batch-file problem a profile finds in one job: (field path within the job, message).
Problem = tuple[str, str]


@dataclass(frozen=True)
class Profile:
    """One model's contract. `outputs` are the files under outputs/ a successful run has, the
    video first (none for the prompt upsampler, whose result is a log line); `problems` checks
    a job's raw fields against what the model can express."""

    name: str
    build_spec: Callable[[Job, dict[str, str], ContainerPaths], dict[str, Any]]
    command: Callable[[Job, dict[str, str], ContainerPaths], list[str]]
    outputs: tuple[str, ...]
    guardrail_blocked: Callable[[RunEnd], bool]
    problems: Callable[[dict[str, Any]], list[Problem]]
    # The spec of the 4K upscale run that follows a job; None when the model has no upscaler.
    build_upscale_spec: Callable[[Job, ContainerPaths], dict[str, Any]] | None = None
    # The prompt a run with `enhance: true` ended with (from its log lines or its outputs
    # folder), or None when it left none; None when the model has no prompt upsampler.
    final_prompt: Callable[[list[str], Path], str | None] | None = None

    @property
    def video(self) -> str:
        return self.outputs[0]
