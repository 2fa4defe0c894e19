"""Batch files: parse, validate every job before anything runs, report every problem at once.

A problem names the file, the line, the job and the field, and says how to fix it."""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosmos_driver import batch_checks as checks
from cosmos_driver import ids, profiles
from cosmos_driver.errors import ValidationError
from cosmos_driver.job_warnings import JobWarnings
from cosmos_driver.model import DEFAULT_PROFILE, DEFAULT_TIMEOUT, Batch, Job
from cosmos_driver.yaml_lines import LinedDocument, load_lined

MODALITIES = ("color", "vis", "edge", "depth", "seg", "keypoint")
CONTROLS = ("vis", "edge", "depth", "seg", "keypoint")
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
JOB_NAME_RULE = (
    "must start with a letter or digit, then letters, digits, '.', '_' or '-' "
    "(128 characters at most)"
)
# Runs a batch may expand to (sweeps and upscales counted) without `max_runs:` or --yes,
# and the most it may expand to at all (docs/batch-file.md#limits).
DEFAULT_MAX_RUNS = 1_000
MAX_RUNS = 100_000

# Sampling parameters passed to the model as they are; Cosmos's defaults apply when unset.
SAMPLING_FIELDS: dict[str, checks.Check] = {
    "negative_prompt": checks.negative_prompt,
    "num_steps": checks.number(1, 200, integer=True),
    "guidance": checks.number(0, 20),
    "seed": checks.number(0, 2**32 - 1, integer=True),
    "sigma_max": checks.number(0, 200),
    "fps": checks.number(1, 120, integer=True),
    "blur_strength": checks.choice,
    "canny_threshold": checks.choice,
}
JOB_FIELDS: dict[str, checks.Check] = {
    "name": checks.text,
    "prompt": checks.prompt,
    "inputs": checks.mapping,
    "controls": checks.mapping,
    "gpus": checks.number(1, 8, integer=True),
    "timeout": checks.number(1, 7 * 24 * 3600, integer=True),
    "retries": checks.number(0, 10, integer=True),
    "env": checks.env,
    "profile": checks.profile,
    "upscale": checks.flag,
    "enhance": checks.flag,
    **SAMPLING_FIELDS,
}
TOP_FIELDS = ("name", "defaults", "jobs", "max_runs")


# Called while a large batch is validated: (jobs valid so far, entries read, entries).
Progress = Callable[[int, int, int], None]
PROGRESS_EVERY = 200


class _Problems:
    """Collects `file:line: where: what` lines, and warnings counted by kind."""

    def __init__(self, source: Path, document: LinedDocument) -> None:
        self.source = source
        self.document = document
        self.items: list[str] = []
        self.warnings = JobWarnings(str(source))

    def add(self, path: str, message: str, label: str | None = None) -> None:
        line = self.document.line_of(path)
        where = f"{self.source}:{line}" if line else str(self.source)
        self.items.append(f"{where}: {label or path}: {message}")

    def unknown_keys(
        self, mapping: dict[str, Any], allowed: tuple[str, ...] | list[str], path: str, label: str
    ) -> None:
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key)[:64], allowed, n=1)
                fix = f"did you mean '{hint[0]}'?" if hint else f"valid: {', '.join(allowed)}"
                shown = _text_of(key)
                self.add(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key; {fix}",
                    f"{label}.{shown}" if label else shown,
                )


def load_batch(
    path: Path, max_runs: int | None = None, on_progress: Progress | None = None
) -> Batch:
    """Parse and validate a batch file; raise ValidationError listing every problem.

    A batch that expands to more than `max_runs` runs (default: the file's `max_runs:`, else
    DEFAULT_MAX_RUNS) is refused before its jobs are expanded."""
    _checked_input.cache_clear()  # files may have come or gone since the last load
    document = load_lined(path)
    problems = _Problems(path, document)
    data = document.data
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: a batch file is a mapping with name, defaults and jobs")
    problems.unknown_keys(data, TOP_FIELDS, "", "")
    name = data.get("name")
    if checks.text(name) or len(name) > 256:
        problems.add("name", "required: the batch's name (text, 256 characters at most)")
    defaults = _defaults(data.get("defaults", {}), problems)
    entries = _entries(data.get("jobs"), problems)
    _check_run_count(path, entries, defaults, _run_limit(data, max_runs, problems), problems)
    jobs = _jobs(entries, defaults, path.parent, problems, on_progress)
    if problems.items:
        raise ValidationError(problems.items)
    warnings = tuple(problems.warnings.lines())
    return Batch(str(name), path.resolve(), tuple(jobs), warnings, len(entries))


def _run_limit(data: dict[str, Any], max_runs: int | None, problems: _Problems) -> int:
    """The runs this batch may expand to: --yes's, else the file's max_runs, else the default."""
    if max_runs is not None:
        return max_runs
    raw = data.get("max_runs", DEFAULT_MAX_RUNS)
    message = checks.number(1, MAX_RUNS, integer=True)(raw)
    if message:
        problems.add("max_runs", f"{message} (the runs this batch may expand to)")
        return DEFAULT_MAX_RUNS
    return int(raw)


def _check_run_count(
    path: Path, entries: list[Any], defaults: dict[str, Any], limit: int, problems: _Problems
) -> None:
    """Count the runs before expanding any sweep: a typo in a sweep must not make the driver
    build millions of jobs."""
    total = sum(_runs_of({**defaults, **e}) for e in entries if isinstance(e, dict))
    if total <= min(limit, MAX_RUNS):
        return
    if total > MAX_RUNS:
        fix = f"at most {MAX_RUNS:,} runs are allowed in one batch; split it into several"
    else:
        fix = f"confirm with --yes, or set `max_runs: {total}` in the batch file"
    raise ValidationError(
        f"{path}: the batch expands to {total:,} runs (sweeps and upscales counted), "
        f"more than {limit:,}; {fix}"
    )


def _runs_of(raw: dict[str, Any]) -> int:
    """How many runs a job entry expands to: the product of its sweeps' lengths, twice that
    with an upscale run each."""
    lengths = [len(raw[k]) for k in _swept(raw)]
    return math.prod(lengths) * (2 if raw.get("upscale") is True else 1)


def _swept(raw: dict[str, Any]) -> list[str]:
    return [k for k in raw if k in SAMPLING_FIELDS and isinstance(raw[k], list) and raw[k]]


def _defaults(raw: Any, problems: _Problems) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.add("defaults", "must be a mapping of job fields")
        return {}
    allowed = [k for k in JOB_FIELDS if k != "name"]
    problems.unknown_keys(raw, allowed, "defaults", "defaults")
    return {k: v for k, v in raw.items() if k in allowed}


def _entries(raw: Any, problems: _Problems) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        problems.add("jobs", "required: a list of at least one job")
        return []
    return raw


def _jobs(
    entries: list[Any],
    defaults: dict[str, Any],
    base: Path,
    problems: _Problems,
    on_progress: Progress | None,
) -> list[Job]:
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(f"jobs[{index}]", "a job is a mapping (name, prompt, inputs, controls)")
            continue
        for variant, sweep in _expand({**defaults, **entry}):
            _add_job(_job(index, variant, base, problems, sweep), index, seen, jobs, problems)
            if on_progress and len(jobs) % PROGRESS_EVERY == 0:
                on_progress(len(jobs), index + 1, len(entries))
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


def _expand(raw: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A sweep: a job listing several values of sampling parameters becomes one job per
    combination (a matrix), named `<name>.<key>-<value>` per swept key in file order, so names are
    readable and stable across re-runs. Each variant comes with its swept values."""
    swept = _swept(raw)
    if not swept:
        return [(raw, {})]
    variants = []
    for values in itertools.product(*(raw[k] for k in swept)):
        sweep = dict(zip(swept, values, strict=True))
        variant = {**raw, **sweep}
        if isinstance(raw.get("name"), str):
            suffix = "".join(f".{k}-{_name_part(v)}" for k, v in sweep.items())
            variant["name"] = raw["name"] + suffix
        variants.append((variant, sweep))
    return variants


def _name_part(value: Any) -> str:
    return ids.slug(str(value), limit=24) if isinstance(value, str) else str(value)


def _job(
    index: int, raw: dict[str, Any], base: Path, problems: _Problems, sweep: dict[str, Any]
) -> Job | None:
    path = f"jobs[{index}]"
    label = f"{path} ({_text_of(raw['name'])})" if isinstance(raw.get("name"), str) else path
    before = len(problems.items)
    problems.unknown_keys(raw, list(JOB_FIELDS), path, label)
    for key in ("name", "prompt", "inputs", "controls"):
        if key not in raw:
            problems.add(path, f"missing required field '{key}'", label)
    wrong = _field_problems(raw, path, label, problems)
    if "name" not in wrong and "name" in raw and not JOB_NAME.fullmatch(raw["name"]):
        problems.add(f"{path}.name", JOB_NAME_RULE, f"{label}.name")
    if "env" not in wrong:
        _env_problems(raw.get("env", {}), path, label, problems)
    inputs = _inputs(raw.get("inputs"), base, path, label, problems)
    controls = _controls(raw.get("controls"), inputs, path, label, problems)
    _profile_problems(raw, wrong, path, label, problems)
    if len(problems.items) > before:
        return None
    _prompt_warnings(raw, problems)
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
        profile=raw.get("profile", DEFAULT_PROFILE),
        upscale=raw.get("upscale", False),
        enhance=raw.get("enhance", False),
        sweep=sweep,
    )


def _field_problems(raw: dict[str, Any], path: str, label: str, problems: _Problems) -> set[str]:
    """Check each known field's type and range; return the fields that failed."""
    wrong = set()
    for key, check in JOB_FIELDS.items():
        message = check(raw[key]) if key in raw else None
        if message:
            wrong.add(key)
            problems.add(f"{path}.{key}", message, f"{label}.{key}")
    return wrong


def _env_problems(env: dict[Any, Any], path: str, label: str, problems: _Problems) -> None:
    for name, message in checks.env_problems(env):
        problems.add(f"{path}.env.{name}", message, f"{label}.env.{_text_of(name)}")


def _prompt_warnings(raw: dict[str, Any], problems: _Problems) -> None:
    """Prompts past what the text encoder reads are kept, and said once with a count."""
    for key in ("prompt", "negative_prompt"):
        value = raw.get(key)
        if isinstance(value, str) and checks.estimated_tokens(value) > checks.PROMPT_TOKENS:
            problems.warnings.add(
                raw["name"],
                f"{key} is longer than about {checks.PROMPT_TOKENS} tokens; Cosmos's T5 text "
                "encoder reads only that much of it",
            )


def _text_of(value: Any, longest: int = 64) -> str:
    """A name or key as a message shows it: as it is when short and printable, else cut."""
    text = str(value)
    return text if len(text) <= longest and text.isprintable() else checks.shown(text)


def _profile_problems(
    raw: dict[str, Any], wrong: set[str], path: str, label: str, problems: _Problems
) -> None:
    """What the job's model profile cannot express, among the fields of the right type."""
    name = raw.get("profile", DEFAULT_PROFILE)
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
        if modality not in MODALITIES:
            continue
        where, name = f"{path}.inputs.{modality}", f"{label}.inputs.{modality}"
        file, message = _input_file(base, value)
        if message:
            problems.add(where, message, name)
        elif file is not None:
            found[modality] = file
    return found


def _input_file(base: Path, value: Any) -> tuple[Path | None, str | None]:
    """The input video `value` names (relative to the batch file), or why it cannot be one."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None, "must be the path of a video file"
    return _checked_input(base, value)


@functools.lru_cache(maxsize=4096)
def _checked_input(base: Path, value: str) -> tuple[Path | None, str | None]:
    """_input_file for a path text: the jobs of a batch share their inputs, so each is
    resolved once per load (load_batch clears this cache when it starts)."""
    try:
        file = (base / value).resolve()
        if file.is_dir():
            return None, f"{_text_of(file, 1024)} is a folder; name a video file in it"
        if not file.is_file():
            what = "not a regular file" if file.exists() else "no such file"
            return None, f"{what}: {_text_of(file, 1024)}"
    except (OSError, RuntimeError) as exc:
        return None, f"cannot use {checks.shown(value)} as a path ({exc})"
    return file, None


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
    weight = checks.number(0, 1)
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
