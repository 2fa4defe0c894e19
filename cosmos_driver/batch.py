"""Batch files: parse, validate every job before anything runs, report every problem at once.

A problem names the file, the line, the job and the field, and says how to fix it."""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_driver import ids, profiles
from cosmos_driver.errors import ValidationError
from cosmos_driver.yaml_lines import LinedDocument, load_lined

MODALITIES = ("color", "vis", "edge", "depth", "seg", "keypoint")
CONTROLS = ("vis", "edge", "depth", "seg", "keypoint")
PRESETS = ("very_low", "low", "medium", "high", "very_high")
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
DEFAULT_TIMEOUT = 4 * 3600

Check = Callable[[Any], str | None]


def _number(low: float, high: float, integer: bool = False) -> Check:
    kind = "a whole number" if integer else "a number"
    span = f"from {low} to {high}" if integer else f"from {low:g} to {high:g}"

    def check(value: Any) -> str | None:
        wrong_type = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong_type or (integer and not isinstance(value, int)):
            return f"must be {kind} {span}, got {value!r}"
        if not low <= value <= high:
            return f"must be {span}, got {value!r}"
        return None

    return check


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"must be non-empty text, got {value!r}"
    return None


def _choice(value: Any) -> str | None:
    return None if value in PRESETS else f"must be one of {', '.join(PRESETS)}, got {value!r}"


def _env(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return "must be a mapping of variable names to values"
    return None


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"must be a mapping, got {value!r}"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _profile(value: Any) -> str | None:
    if value in profiles.NAMES:
        return None
    hint = difflib.get_close_matches(str(value), profiles.NAMES, n=1)
    fix = f"did you mean '{hint[0]}'?" if hint else f"valid: {', '.join(profiles.NAMES)}"
    return f"unknown model profile {value!r}; {fix}"


# Sampling parameters passed to the model as they are; Cosmos's defaults apply when unset.
SAMPLING_FIELDS: dict[str, Check] = {
    "negative_prompt": _text,
    "num_steps": _number(1, 200, integer=True),
    "guidance": _number(0, 20),
    "seed": _number(0, 2**32 - 1, integer=True),
    "sigma_max": _number(0, 200),
    "fps": _number(1, 120, integer=True),
    "blur_strength": _choice,
    "canny_threshold": _choice,
}
JOB_FIELDS: dict[str, Check] = {
    "name": _text,
    "prompt": _text,
    "inputs": _mapping,
    "controls": _mapping,
    "gpus": _number(1, 8, integer=True),
    "timeout": _number(1, 7 * 24 * 3600, integer=True),
    "retries": _number(0, 10, integer=True),
    "env": _env,
    "profile": _profile,
    "upscale": _flag,
    "enhance": _flag,
    **SAMPLING_FIELDS,
}
TOP_FIELDS = ("name", "defaults", "jobs")


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
    profile: str = profiles.DEFAULT
    # A 4K upscale run follows this job's run, on its host (cosmos_driver.upscale).
    upscale: bool = False
    # Transfer1's prompt upsampler rewrites the prompt before inference; the run record keeps
    # the prompt it ended with (RunRecord.enhanced_prompt).
    enhance: bool = False


@dataclass(frozen=True)
class Batch:
    name: str
    source: Path
    jobs: tuple[Job, ...]

    @property
    def batch_id(self) -> str:
        return ids.batch_id(self.name)

    def run_id(self, job: Job) -> str:
        return ids.run_id(self.batch_id, job.name)


class _Problems:
    """Collects `file:line: where: what` lines."""

    def __init__(self, source: Path, document: LinedDocument) -> None:
        self.source = source
        self.document = document
        self.items: list[str] = []

    def add(self, path: str, message: str, label: str | None = None) -> None:
        line = self.document.line_of(path)
        where = f"{self.source}:{line}" if line else str(self.source)
        self.items.append(f"{where}: {label or path}: {message}")

    def unknown_keys(
        self, mapping: dict[str, Any], allowed: tuple[str, ...] | list[str], path: str, label: str
    ) -> None:
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                fix = f"did you mean '{hint[0]}'?" if hint else f"valid: {', '.join(allowed)}"
                self.add(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key; {fix}",
                    f"{label}.{key}" if label else str(key),
                )


def load_batch(path: Path) -> Batch:
    """Parse and validate a batch file; raise ValidationError listing every problem."""
    document = load_lined(path)
    problems = _Problems(path, document)
    data = document.data
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: a batch file is a mapping with name, defaults and jobs")
    problems.unknown_keys(data, TOP_FIELDS, "", "")
    name = data.get("name")
    if _text(name):
        problems.add("name", "required: the batch's name (text), which also names its runs")
    defaults = _defaults(data.get("defaults", {}), problems)
    jobs = _jobs(data.get("jobs"), defaults, path.parent, problems)
    if problems.items:
        raise ValidationError(problems.items)
    return Batch(str(name), path.resolve(), tuple(jobs))


def _defaults(raw: Any, problems: _Problems) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.add("defaults", "must be a mapping of job fields")
        return {}
    allowed = [k for k in JOB_FIELDS if k != "name"]
    problems.unknown_keys(raw, allowed, "defaults", "defaults")
    return {k: v for k, v in raw.items() if k in allowed}


def _jobs(raw: Any, defaults: dict[str, Any], base: Path, problems: _Problems) -> list[Job]:
    if not isinstance(raw, list) or not raw:
        problems.add("jobs", "required: a list of at least one job")
        return []
    jobs, seen = [], {}
    for index, entry in enumerate(raw):
        path = f"jobs[{index}]"
        if not isinstance(entry, dict):
            problems.add(path, "a job is a mapping (name, prompt, inputs, controls, ...)")
            continue
        for variant in _expand({**defaults, **entry}):
            _add_job(_job(index, variant, base, problems), index, seen, jobs, problems)
    return jobs


def _add_job(
    job: Job | None, index: int, seen: dict[str, int], jobs: list[Job], problems: _Problems
) -> None:
    """Keep a valid job unless another has its name."""
    if job is None:
        return
    if job.name in seen:
        path = f"jobs[{index}]"
        problems.add(
            f"{path}.name",
            f"duplicate job name; jobs[{seen[job.name]}] has it too",
            f"{path} ({job.name}).name",
        )
        return
    seen[job.name] = index
    jobs.append(job)


def _expand(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """A sweep: a job listing several values of sampling parameters becomes one job per
    combination (a matrix), named `<name>.<key>-<value>` per swept key in file order, so names are
    readable and stable across re-runs."""
    swept = [k for k in raw if k in SAMPLING_FIELDS and isinstance(raw[k], list) and raw[k]]
    if not swept:
        return [raw]
    variants = []
    for values in itertools.product(*(raw[k] for k in swept)):
        variant = {**raw, **dict(zip(swept, values, strict=True))}
        if isinstance(raw.get("name"), str):
            suffix = "".join(f".{k}-{_name_part(v)}" for k, v in zip(swept, values, strict=True))
            variant["name"] = raw["name"] + suffix
        variants.append(variant)
    return variants


def _name_part(value: Any) -> str:
    return ids.slug(str(value), limit=24) if isinstance(value, str) else str(value)


def _job(index: int, raw: dict[str, Any], base: Path, problems: _Problems) -> Job | None:
    path = f"jobs[{index}]"
    label = f"{path} ({raw['name']})" if isinstance(raw.get("name"), str) else path
    before = len(problems.items)
    problems.unknown_keys(raw, list(JOB_FIELDS), path, label)
    for key in ("name", "prompt", "inputs", "controls"):
        if key not in raw:
            problems.add(path, f"missing required field '{key}'", label)
    wrong = set()
    for key, check in JOB_FIELDS.items():
        message = check(raw[key]) if key in raw else None
        if message:
            wrong.add(key)
            problems.add(f"{path}.{key}", message, f"{label}.{key}")
    if "name" in raw and not _text(raw["name"]) and not JOB_NAME.fullmatch(raw["name"]):
        problems.add(
            f"{path}.name", "use letters, digits, '.', '_' or '-' (128 at most)", f"{label}.name"
        )
    inputs = _inputs(raw.get("inputs"), base, path, label, problems)
    controls = _controls(raw.get("controls"), inputs, path, label, problems)
    _profile_problems(raw, wrong, path, label, problems)
    if len(problems.items) > before:
        return None
    return Job(
        name=raw["name"],
        prompt=raw["prompt"],
        inputs=inputs,
        controls=controls,
        sampling={k: raw[k] for k in SAMPLING_FIELDS if k in raw},
        gpus=raw.get("gpus", 1),
        timeout=raw.get("timeout", DEFAULT_TIMEOUT),
        retries=raw.get("retries", 0),
        env={k: str(v) for k, v in raw.get("env", {}).items()},
        profile=raw.get("profile", profiles.DEFAULT),
        upscale=raw.get("upscale", False),
        enhance=raw.get("enhance", False),
    )


def _profile_problems(
    raw: dict[str, Any], wrong: set[str], path: str, label: str, problems: _Problems
) -> None:
    """What the job's model profile cannot express, among the fields of the right type."""
    name = raw.get("profile", profiles.DEFAULT)
    if "profile" in wrong:
        return
    valid = {k: v for k, v in raw.items() if k not in wrong}
    for where, message in profiles.profile_named(name).problems(valid):
        problems.add(f"{path}.{where}", message, f"{label}.{where}")


def _inputs(raw: Any, base: Path, path: str, label: str, problems: _Problems) -> dict[str, Path]:
    if not isinstance(raw, dict):
        return {}
    problems.unknown_keys(raw, MODALITIES, f"{path}.inputs", f"{label}.inputs")
    if "color" not in raw:
        problems.add(
            f"{path}.inputs", "needs a 'color' video (the scene to transfer)", f"{label}.inputs"
        )
    found = {}
    for modality, value in raw.items():
        where, name = f"{path}.inputs.{modality}", f"{label}.inputs.{modality}"
        if modality not in MODALITIES:
            continue
        if not isinstance(value, str) or not value:
            problems.add(where, "must be the path of a video file", name)
            continue
        file = (base / value).resolve()
        if not file.is_file():
            problems.add(where, f"no such file: {file}", name)
            continue
        found[modality] = file
    return found


def _controls(
    raw: Any, inputs: dict[str, Path], path: str, label: str, problems: _Problems
) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    problems.unknown_keys(raw, CONTROLS, f"{path}.controls", f"{label}.controls")
    if not raw:
        problems.add(
            f"{path}.controls",
            f"give at least one of {', '.join(CONTROLS)} a weight",
            f"{label}.controls",
        )
    weight = _number(0, 1)
    for key, value in raw.items():
        message = weight(value) if key in CONTROLS else None
        if message:
            problems.add(f"{path}.controls.{key}", message, f"{label}.controls.{key}")
    for modality in inputs:
        if modality != "color" and modality not in raw:
            problems.add(
                f"{path}.inputs.{modality}",
                f"a {modality} video needs a weight: add controls.{modality}: 0.5",
                f"{label}.inputs.{modality}",
            )
    return {k: float(v) for k, v in raw.items() if k in CONTROLS and not weight(v)}
