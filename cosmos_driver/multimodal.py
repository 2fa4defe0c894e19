"""Multimodal input checks: a job's videos agree with each other and with what Cosmos does.

Run before anything is uploaded, so that a batch with a truncated depth video or a control
of the wrong length fails in a second, on the laptop, naming every problem at once, instead
of after an upload and a model load on the GPU host.

Problems block the batch; warnings do not (Cosmos copes, but the user may not expect what
it does, such as resizing). The facts about Cosmos come from docs/cosmos-transfer.md §6
and Transfer1's `inference_utils.py` (`VIDEO_RES_SIZE_INFO`, `detect_aspect_ratio`,
`NUM_MAX_FRAMES`, `resize_video`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_driver.batch import MODALITIES
from cosmos_driver.errors import ValidationError
from cosmos_driver.job_warnings import JobWarnings
from cosmos_driver.model import Batch
from cosmos_driver.video import VideoInfo, probe

log = logging.getLogger(__name__)

# Two videos "have the same frame rate" when their rates differ by at most this many frames
# per second: 30000/1001 and 29.97 agree (the same rate, written two ways); 29.97 and 30 do not.
FPS_TOLERANCE = 0.01
# The output plays at the job's fps (Transfer1's --fps); warn when that differs from the color
# video's rate by more than this fraction (1%: a speed change one would notice).
OUTPUT_FPS_TOLERANCE = 0.01
# An aspect change smaller than this fraction is not worth a word in the resize warning.
ASPECT_TOLERANCE = 0.005

ProbeFile = Callable[[Path], VideoInfo]


@dataclass(frozen=True)
class CosmosLimits:
    """What a model profile does to its input videos."""

    profile: str
    # (aspect ratio width/height, the size Cosmos resizes to), in the model's order.
    sizes: tuple[tuple[float, tuple[int, int]], ...]
    max_frames: int
    default_fps: int


# Transfer1: the nearest aspect ratio (squared difference of width/height) picks the size,
# and every frame is resized to it with cv2.resize, stretching, never cropping. At most
# NUM_MAX_FRAMES frames are read (generation then runs in chunks of 121 frames, any count
# being fine); --fps defaults to 24.
TRANSFER1 = CosmosLimits(
    profile="transfer1",
    sizes=(
        (16 / 9, (1280, 704)),
        (4 / 3, (960, 704)),
        (1.0, (960, 960)),
        (3 / 4, (704, 960)),
        (9 / 16, (704, 1280)),
    ),
    max_frames=5000,
    default_fps=24,
)


@dataclass
class InputReport:
    """The checks of one job's inputs: what blocks it, what is only worth saying, and the
    facts of every file that could be read."""

    job: str
    videos: dict[str, VideoInfo] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def cosmos_size(width: int, height: int, limits: CosmosLimits = TRANSFER1) -> tuple[int, int]:
    """The size Cosmos resizes a width×height video to: that of the nearest aspect ratio."""
    ratio = width / height
    return min(limits.sizes, key=lambda entry: (entry[0] - ratio) ** 2)[1]


def check_job_inputs(
    job_label: str,
    inputs: dict[str, Path],
    output_fps: float | None = None,
    probe_file: ProbeFile = probe,
    limits: CosmosLimits = TRANSFER1,
) -> InputReport:
    """Probe each input of one job and check them against each other and against Cosmos.

    `job_label` starts every line (say, "batch.yaml: job street"); `output_fps` is the job's
    fps (None: the profile's default); `probe_file` lets a batch probe each file once."""
    report = InputReport(job_label)
    for modality, path in inputs.items():
        if modality not in MODALITIES:
            report.problems.append(
                f"{job_label}: inputs.{modality} ({path}): unknown modality; "
                f"valid: {', '.join(MODALITIES)}"
            )
            continue
        try:
            report.videos[modality] = probe_file(path)
        except ValidationError as exc:
            report.problems.extend(f"{job_label}: inputs.{modality}: {p}" for p in exc.problems)
    _check_color_present(report, inputs)
    reference = _reference(report.videos)
    if reference:
        _check_agreement(report, reference)
        _check_cosmos(report, reference, limits)
        _check_output_fps(report, reference, output_fps, limits)
    return report


def check_batch_inputs(
    batch: Batch, limits: CosmosLimits = TRANSFER1
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of every job of `batch`, all at once; each file is probed once,
    however many jobs use it. Each line names the batch file, the job and the input."""
    probe_once = CachedProbe()
    problems: list[str] = []
    warnings = JobWarnings(str(batch.source))
    for job in batch.jobs:
        report = check_job_inputs(
            f"{batch.source}: job {job.name}",
            job.inputs,
            output_fps=job.sampling.get("fps"),
            probe_file=probe_once,
            limits=limits,
        )
        problems.extend(report.problems)
        prefix = f"{batch.source}: job {job.name}: "
        for warning in report.warnings:
            warnings.add(job.name, warning.removeprefix(prefix))
    log.info(
        "checked %d input video(s) of %d job(s): %d problem(s), %d warning(s)",
        len(probe_once.results),
        len(batch.jobs),
        len(problems),
        len(warnings.jobs),
    )
    return problems, warnings.lines()


class CachedProbe:
    """probe() that remembers each file's facts, or its error, while the file stays the same
    (its size and mtime): for the rest of a batch, or for as long as the dashboard runs."""

    def __init__(self) -> None:
        self.results: dict[tuple[Path, int, int], VideoInfo | ValidationError] = {}

    def __call__(self, path: Path) -> VideoInfo:
        key = _file_key(Path(path))
        if key not in self.results:
            try:
                self.results[key] = probe(path)
            except ValidationError as exc:
                self.results[key] = exc
        result = self.results[key]
        if isinstance(result, ValidationError):
            raise result
        return result


def _file_key(path: Path) -> tuple[Path, int, int]:
    """Where a file is and which version of it: a changed file is probed again."""
    try:
        stat = path.stat()
    except OSError:
        return (path.resolve(), -1, -1)  # probe() names what is wrong with it
    return (path.resolve(), stat.st_size, stat.st_mtime_ns)


def _reference(videos: dict[str, VideoInfo]) -> tuple[str, VideoInfo] | None:
    """The video the others are compared with: color, else the first that could be read."""
    if "color" in videos:
        return "color", videos["color"]
    return next(iter(videos.items()), None)


def _check_color_present(report: InputReport, inputs: dict[str, Path]) -> None:
    if "color" in inputs:
        return
    if not inputs:
        report.problems.append(f"{report.job}: inputs: no videos; add inputs.color")
        return
    report.problems.append(
        f"{report.job}: inputs: control video(s) ({', '.join(inputs)}) without a color "
        "video; add inputs.color, the scene the controls were made from"
    )


def _check_agreement(report: InputReport, reference: tuple[str, VideoInfo]) -> None:
    """Frame count, size and fps of every other input against the reference's."""
    name, base = reference
    for modality, video in report.videos.items():
        if modality == name:
            continue
        where = f"{report.job}: inputs.{modality} ({video.path})"
        other = f"inputs.{name} ({base.path})"
        if video.frames != base.frames:
            report.problems.append(
                f"{where} has {video.frames} frames but {other} has {base.frames}; "
                "Cosmos trims every input to the shortest, so they must be equal"
            )
        if video.size != base.size:
            report.problems.append(
                f"{where} is {_size(video.size)} but {other} is {_size(base.size)}; "
                "the controls must line up with the color video pixel for pixel"
            )
        if abs(video.fps - base.fps) > FPS_TOLERANCE:
            report.problems.append(
                f"{where} is {video.fps:g} fps but {other} is {base.fps:g} fps "
                f"(they must agree within {FPS_TOLERANCE:g} fps)"
            )


def _check_cosmos(
    report: InputReport, reference: tuple[str, VideoInfo], limits: CosmosLimits
) -> None:
    """What the model will do to the reference video (the others match it or are problems)."""
    name, video = reference
    where = f"{report.job}: inputs.{name} ({video.path})"
    if video.frames > limits.max_frames:
        report.problems.append(
            f"{where} has {video.frames} frames; {limits.profile} reads at most "
            f"{limits.max_frames} and would drop the rest without a word: cut it "
            f"(ffmpeg -i IN -frames:v {limits.max_frames} OUT.mp4) or split it into jobs"
        )
    target = cosmos_size(video.width, video.height, limits)
    if video.size != target:
        report.warnings.append(
            f"{where} is {_size(video.size)}: {limits.profile} resizes it to "
            f"{_size(target)}{_aspect_note(video.size, target)}"
        )


def _check_output_fps(
    report: InputReport,
    reference: tuple[str, VideoInfo],
    output_fps: float | None,
    limits: CosmosLimits,
) -> None:
    """The output plays at the job's fps, not the input's: say so when they differ."""
    name, video = reference
    fps = output_fps or limits.default_fps
    if abs(fps / video.fps - 1) <= OUTPUT_FPS_TOLERANCE:
        return
    source = "the job's fps" if output_fps else f"{limits.profile}'s default"
    report.warnings.append(
        f"{report.job}: inputs.{name} ({video.path}) is {video.fps:g} fps but the output is "
        f"written at {fps:g} fps ({source}), so motion plays at {fps / video.fps:.2f}× speed; "
        f"set fps: {round(video.fps)} in the job to keep its speed"
    )


def _aspect_note(size: tuple[int, int], target: tuple[int, int]) -> str:
    """How the picture's shape changes in the resize (Transfer1 stretches, never crops)."""
    before, after = size[0] / size[1], target[0] / target[1]
    change = after / before - 1
    if abs(change) < ASPECT_TOLERANCE:
        return ""
    direction = "wider" if change > 0 else "taller"
    return (
        f" (aspect {before:.2f} → {after:.2f}: the picture is stretched {abs(change):.1%} "
        f"{direction}, not cropped)"
    )


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"
