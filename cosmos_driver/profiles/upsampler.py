"""Transfer1's prompt upsampler as a job of its own (`invoke enhance`): the standalone
pipeline's command line and its one result, the `Upsampled prompt: …` line it prints
(docs/cosmos-transfer.md §5). It is a profile a job gets from its task, never from a
batch file."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from cosmos_driver.profiles.base import ContainerPaths, Problem, RunEnd

if TYPE_CHECKING:
    from pathlib import Path

    from cosmos_driver.model import Job

NAME = "transfer1-upsampler"
# The run record's kind for an `invoke enhance` run.
KIND = "enhance"
SCRIPT = "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py"
# The pipeline writes no files: its result is a line of its log.
OUTPUTS: tuple[str, ...] = ()
PROMPT_LINE = re.compile(r"Upsampled prompt: (.*\S)")


def _video(input_names: dict[str, str], paths: ContainerPaths) -> str:
    return f"{paths.inputs}/{input_names['color']}"


def build_spec(job: Job, input_names: dict[str, str], paths: ContainerPaths) -> dict[str, Any]:
    """What was asked, kept as the run's spec.json: the pipeline itself reads no spec."""
    return {"prompt": job.prompt, "input_video": _video(input_names, paths)}


def command(job: Job, input_names: dict[str, str], paths: ContainerPaths) -> list[str]:
    """torchrun with one process: the pipeline reads RANK and works on rank 0 only. The
    prompt is one `--prompt=…` token, so a prompt that starts with '-' is not an option."""
    return [
        "torchrun",
        "--nproc_per_node=1",
        SCRIPT,
        f"--prompt={job.prompt}",
        "--input_video",
        _video(input_names, paths),
        "--checkpoint_dir",
        paths.checkpoints,
    ]


def final_prompt(log_lines: list[str], _outputs: Path) -> str | None:
    """The last `Upsampled prompt: …` line of the log, or None when there is none."""
    for line in reversed(log_lines):
        found = PROMPT_LINE.search(line)
        if found:
            return found[1].strip()
    return None


def blocked(_end: RunEnd) -> bool:
    """The upsampler has no guardrail of its own."""
    return False


def problems(_raw: dict[str, Any]) -> list[Problem]:
    """No batch file names this profile, so no batch field is checked against it."""
    return []
