"""inspect and prepare: look at input videos, and turn PNG sequences into them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import task
from rich.markup import escape
from rich.table import Table

from cosmos_driver.batch import MODALITIES
from cosmos_driver.errors import ValidationError
from cosmos_driver.multimodal import InputReport, check_job_inputs, cosmos_size
from cosmos_driver.prepare import DEFAULT_FPS, PreparedVideo, prepare_sequences
from cosmos_driver.tasks.common import JSON_HELP, cli_errors, console, errors, print_json
from cosmos_driver.video import VideoInfo, probe

VIDEO_SUFFIXES = (".mp4",)


@task(
    iterable=["also"],
    help={
        "path": "a video file, or a folder: its .mp4 files, checked together as a job's "
        "inputs when they are named <modality>.mp4",
        "also": "another file or folder to inspect (repeat for more)",
        "exact": "decode every frame to count them, even where the packets confirm the "
        "container's count",
        "json": JSON_HELP,
    },
)
@cli_errors
def inspect(c, path=None, also=None, exact=False, json=False):
    """Width, height, fps, frames, duration and codec of videos; checks input folders."""
    if path is None:
        raise ValidationError("inspect needs --path PATH (a video file, or a folder of them)")
    targets = [Path(p) for p in [path, *(also or [])]]
    results: dict[Path, VideoInfo | ValidationError] = {}
    folders: list[Path] = []
    for target in targets:
        if target.is_dir():
            folders.append(target)
        for file in _videos_of(target):
            results[file] = _probe_or_error(file, exact)
    reports = [_folder_report(folder, results) for folder in folders]
    reports = [r for r in reports if r]
    if json:
        print_json(_inspect_json(results, reports))
    else:
        _print_inspect(results, reports)
    _fail_if_problems(results, reports)


@task(
    help={
        "dir": "folder of PNG frames named <modality>.<frame>.png (color.0001.png, ...)",
        "fps": f"frame rate of the videos (default {DEFAULT_FPS:g})",
        "out": "folder for the videos (default DIR/videos); usable as a job's inputs",
        "json": JSON_HELP,
    }
)
@cli_errors
def prepare(c, dir=None, fps=DEFAULT_FPS, out=None, json=False):
    """Check PNG sequences and turn them into one mp4 per modality (color.mp4, depth.mp4, ...)."""
    if dir is None:
        raise ValidationError(
            "prepare needs --dir DIR (a folder of PNG frames named <modality>.<frame>.png)"
        )
    videos = prepare_sequences(Path(dir), Path(out) if out else None, float(fps))
    report = check_job_inputs(str(videos[0].path.parent), {v.modality: v.path for v in videos})
    if json:
        print_json(
            {
                "videos": [v.to_json() for v in videos],
                "problems": report.problems,
                "warnings": report.warnings,
            }
        )
    else:
        _print_prepared(videos, report)
    if report.problems:
        raise ValidationError(report.problems)


def _videos_of(target: Path) -> list[Path]:
    """A file is itself; a folder is its video files (not recursive), sorted by name."""
    if not target.is_dir():
        return [target]
    files = sorted(
        p for p in target.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )
    if not files:
        raise ValidationError(f"{target}: no .mp4 files in this folder")
    return files


def _probe_or_error(file: Path, exact: bool) -> VideoInfo | ValidationError:
    try:
        return probe(file, exact=exact)
    except ValidationError as exc:
        return exc


def _folder_report(
    folder: Path, results: dict[Path, VideoInfo | ValidationError]
) -> InputReport | None:
    """The multimodal check of a folder whose videos are named after modalities."""
    inputs = {p.stem: p for p in results if p.parent == folder and p.stem in MODALITIES}
    if not inputs:
        return None

    def known(path: Path) -> VideoInfo:
        result = results[path]
        if isinstance(result, ValidationError):
            raise result
        return result

    return check_job_inputs(str(folder), inputs, probe_file=known)


def _inspect_json(
    results: dict[Path, VideoInfo | ValidationError], reports: list[InputReport]
) -> dict[str, Any]:
    videos = [
        {"path": str(p), "error": str(r)} if isinstance(r, ValidationError) else r.to_json()
        for p, r in results.items()
    ]
    folders = [{"folder": r.job, "problems": r.problems, "warnings": r.warnings} for r in reports]
    return {"videos": videos, "folders": folders}


def _print_inspect(
    results: dict[Path, VideoInfo | ValidationError], reports: list[InputReport]
) -> None:
    table = Table()
    for heading in ("file", "codec", "size", "fps", "frames", "seconds", "transfer1 size"):
        table.add_column(heading, overflow="fold")
    for path, result in results.items():
        if isinstance(result, ValidationError):
            table.add_row(escape(str(path)), "[red]unreadable[/]", "", "", "", "", "")
            continue
        table.add_row(*_video_row(result))
    console.print(table)
    for report in reports:
        _print_report(report)


def _video_row(info: VideoInfo) -> list[str]:
    width, height = cosmos_size(info.width, info.height)
    return [
        escape(str(info.path)),
        escape(info.codec or "?"),
        f"{info.width}×{info.height}",
        f"{info.fps:g}",
        str(info.frames),
        f"{info.duration:.3f}",
        f"{width}×{height}",
    ]


def _print_prepared(videos: list[PreparedVideo], report: InputReport) -> None:
    table = Table()
    for heading in ("modality", "video", "frames", "from", "to", "size", "fps"):
        table.add_column(heading, overflow="fold")
    for video in videos:
        table.add_row(
            video.modality,
            escape(str(video.path)),
            str(video.frames),
            str(video.first_frame),
            str(video.last_frame),
            f"{video.width}×{video.height}",
            f"{video.fps:g}",
        )
    console.print(table)
    _print_report(report)


def _print_report(report: InputReport) -> None:
    for line in report.warnings:
        errors.print(f"[yellow]warning:[/] {escape(line)}", markup=True, highlight=False)
    if report.ok:
        console.print(escape(f"{report.job}: the inputs agree ({', '.join(report.videos)})"))


def _fail_if_problems(
    results: dict[Path, VideoInfo | ValidationError], reports: list[InputReport]
) -> None:
    """Exit non-zero (2), printing each problem once: the errors of unreadable files (a
    file checked as part of a folder is named in that folder's problems), then the folders'."""
    checked = {Path(r.job) for r in reports}
    lines = [
        line
        for path, result in results.items()
        if isinstance(result, ValidationError)
        and not (path.parent in checked and path.stem in MODALITIES)
        for line in result.problems
    ]
    lines += [line for report in reports for line in report.problems]
    if lines:
        raise ValidationError(lines)
