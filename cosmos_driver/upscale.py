"""4K upscale runs: a job with `upscale: true` gets a second run, dependent on the job's own,
that upscales the first run's video on the same host from the outputs already there (its
run folder is mounted read-only: nothing is uploaded again)."""

from __future__ import annotations

from dataclasses import replace

from cosmos_driver.errors import ValidationError
from cosmos_driver.host_contract import SPEC_FILE
from cosmos_driver.model import Job
from cosmos_driver.profiles import ContainerPaths
from cosmos_driver.run.types import PreparedRun
from cosmos_driver.store import RunStore, write_json_atomic

UPSCALE_KIND = "upscale"
SUFFIX = ".upscale"


def upscale_run_id(parent_run_id: str) -> str:
    """`<parent run id>.upscale`: stable, and never a job's own run id (those end in a hash)."""
    return parent_run_id + SUFFIX


def prepare_upscale(store: RunStore, batch_id: str, parent_run_id: str, job: Job) -> PreparedRun:
    """The upscale run of `job`: its spec saved as runs/<run_id>/spec.json, no inputs of its
    own (its input is the parent's output on the parent's host)."""
    run_id = upscale_run_id(parent_run_id)
    # The upscale run neither enhances its prompt again nor is followed by another upscale.
    upscale_job = replace(job, name=job.name + SUFFIX, upscale=False, enhance=False)
    spec_path = store.run_dir(run_id) / SPEC_FILE
    run = PreparedRun(run_id, batch_id, upscale_job, {}, spec_path, parent_id=parent_run_id)
    build = run.profile.build_upscale_spec
    if build is None:
        raise ValidationError(f"job {job.name}: profile {job.profile} has no 4K upscaler")
    write_json_atomic(spec_path, build(job, ContainerPaths()))
    return run
