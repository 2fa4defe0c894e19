"""The input videos a batch's runs name, with their real metadata and the multimodal check's
verdict, problem by problem: the dashboard's inputs view."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cosmos_driver.errors import ValidationError
from cosmos_driver.multimodal import CachedProbe, check_job_inputs
from cosmos_driver.records import RunRecord


@dataclass(frozen=True)
class InputVideo:
    """One input file: its metadata, or why it cannot be read."""

    modality: str
    path: str
    info: dict[str, Any] | None
    problem: str | None


@dataclass(frozen=True)
class JobInputs:
    """One job's inputs and what the multimodal check says of them together."""

    job_name: str
    run_id: str
    videos: list[InputVideo]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The other jobs with the same inputs and output fps, whose verdict is the same.
    also: list[str] = field(default_factory=list)

    @property
    def modalities(self) -> list[str]:
        return [v.modality for v in self.videos]


def job_inputs(records: list[RunRecord], probe_file: CachedProbe) -> list[JobInputs]:
    """The inputs of the batch's jobs, once per set of jobs that share the same videos and
    output fps (a sweep's jobs, a job's dependent runs): a sweep of 1,000 runs is one entry."""
    groups: dict[tuple[Any, ...], list[RunRecord]] = {}
    for record in records:
        if record.inputs:
            key = (tuple(sorted(record.inputs.items())), record.parameters.get("fps"))
            groups.setdefault(key, []).append(record)
    found = []
    for members in groups.values():
        names = list(dict.fromkeys(r.job_name for r in members))
        found.append(replace(_one_job(members[0], probe_file), also=names[1:]))
    return found


def _one_job(record: RunRecord, probe_file: CachedProbe) -> JobInputs:
    inputs = {m: Path(p) for m, p in record.inputs.items()}
    report = check_job_inputs(
        f"job {record.job_name}",
        inputs,
        output_fps=record.parameters.get("fps"),
        probe_file=probe_file,
    )
    videos = [_video(m, p, probe_file) for m, p in inputs.items()]
    return JobInputs(
        record.job_name, record.run_id, videos, list(report.problems), list(report.warnings)
    )


def _video(modality: str, path: Path, probe_file: CachedProbe) -> InputVideo:
    try:
        info = probe_file(path)
    except (ValidationError, OSError) as exc:
        return InputVideo(modality, str(path), None, str(exc))
    data = info.to_json()
    data["duration"] = round(info.duration, 3)
    return InputVideo(modality, str(path), data, None)
