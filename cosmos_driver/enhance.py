"""Prompt enhancement as a job of its own: one prompt and one video become a one-job batch
of Transfer1's prompt upsampler, which runs like any other job (records, lifecycle,
playbooks) and leaves the enhanced prompt in its run record."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cosmos_driver import batch_checks
from cosmos_driver.errors import ValidationError
from cosmos_driver.model import Batch, Job
from cosmos_driver.profiles import UPSAMPLER
from cosmos_driver.run.spec import file_sha256

JOB_NAME = "enhance"


def enhance_batch(prompt: str, video: Path) -> Batch:
    """The batch that enhances `prompt` with the first frames of `video`. Its name comes from
    the prompt and the video's content, so asking again for the same pair finds the run that
    answered it instead of running the upsampler again."""
    problem = batch_checks.prompt(prompt)
    if problem:
        raise ValidationError(f"--prompt: {problem}: give the prompt to enhance")
    if video.is_dir():
        raise ValidationError(f"--video: {video} is a folder; name a video file in it")
    if not video.is_file():
        raise ValidationError(f"--video: no such file: {video}")
    digest = hashlib.sha256(f"{prompt}\0{file_sha256(video)}".encode()).hexdigest()[:12]
    job = Job(
        name=JOB_NAME,
        prompt=prompt,
        inputs={"color": video.resolve()},
        controls={},
        profile=UPSAMPLER,
        enhance=True,
    )
    return Batch(f"enhance {video.stem} {digest}", video.resolve(), (job,))
