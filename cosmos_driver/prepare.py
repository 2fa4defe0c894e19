"""PNG sequences to one mp4 per modality, checked before anything is written.

A folder holds frames named `<modality>.<frame>.png` (`color.0001.png`, `depth.12.png`: the
frame number may have any width). `prepare_sequences` checks the whole folder first, naming
every problem at once: files that do not follow the convention, gaps and duplicates in the
frame numbers, frames whose size differs from the rest of their sequence or from the color
sequence, sizes the mp4v encoder cannot take, a missing color sequence. Only then does it
write `<modality>.mp4` into the output folder, each under a temporary name first and renamed
once all are written and read back, so a failure leaves no half-written video behind.

The output folder is a job's inputs as it is: `inputs: {color: videos/color.mp4, ...}`."""

from __future__ import annotations

import contextlib
import difflib
import itertools
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from cosmos_driver.batch import MODALITIES
from cosmos_driver.errors import ValidationError
from cosmos_driver.store import fsync_dir
from cosmos_driver.video import probe

log = logging.getLogger(__name__)

FRAME_NAME = re.compile(r"(?P<modality>[^.]+)\.(?P<number>\d+)\.png", re.IGNORECASE)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FOURCC = "mp4v"
DEFAULT_FPS = 24.0
MAX_FPS = 120.0
# OpenCV's writer stores the rate as a fraction with a small denominator (30000/1001 becomes
# 2997/100), so the rate read back may differ from --fps by that rounding.
FPS_READ_BACK_TOLERANCE = 0.01
# Names other tools (the predecessor among them) give modalities: named in the hint only;
# such files are still refused, so that nothing is renamed behind the user's back.
ALIASES = {
    "rgb": "color",
    "segmentation": "seg",
    "canny": "edge",
    "blur": "vis",
    "keypoints": "keypoint",
    "pose": "keypoint",
}
# How many offending files one problem line names before it says "and N more".
NAMED = 5


@dataclass(frozen=True)
class Sequence:
    """One modality's frames, by frame number, and their common size (width, height)."""

    modality: str
    frames: dict[int, Path]
    size: tuple[int, int]

    @property
    def ordered(self) -> list[Path]:
        return [self.frames[n] for n in sorted(self.frames)]


@dataclass(frozen=True)
class PreparedVideo:
    """A video `prepare_sequences` wrote, with the facts read back from it."""

    modality: str
    path: Path
    frames: int
    width: int
    height: int
    fps: float
    first_frame: int
    last_frame: int

    def to_json(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "path": str(self.path),
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
        }


def prepare_sequences(
    folder: Path, out: Path | None = None, fps: float = DEFAULT_FPS
) -> list[PreparedVideo]:
    """Check the PNG sequences in `folder`, then write `<modality>.mp4` for each into `out`
    (default `folder/videos`) at `fps`. Raises ValidationError listing every problem."""
    folder = Path(folder)
    out = Path(out) if out else folder / "videos"
    sequences = check_sequences(folder, fps)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    try:
        for modality, sequence in sequences.items():
            written[modality] = out / f".{modality}.partial-{os.getpid()}.mp4"
            _write_video(sequence, written[modality], fps)
        videos = [
            _read_back(sequences[m], tmp, out / f"{m}.mp4", fps) for m, tmp in written.items()
        ]
        for video in videos:
            written[video.modality].replace(video.path)
    finally:
        for tmp in written.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    fsync_dir(out)
    log.info("wrote %d video(s) into %s", len(videos), out)
    return videos


def check_sequences(folder: Path, fps: float = DEFAULT_FPS) -> dict[str, Sequence]:
    """The sequences of `folder`, color first; raises ValidationError with every problem."""
    if not folder.is_dir():
        raise ValidationError(f"{folder}: no such folder")
    problems: list[str] = []
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        problems.append(f"--fps must be a number above 0 and at most {MAX_FPS:g}, got {fps:g}")
    found = _scan(folder, problems)
    if not found:
        problems.append(
            f"{folder}: no PNG frames named <modality>.<frame>.png "
            f"(modality one of {', '.join(MODALITIES)})"
        )
    elif "color" not in found:
        problems.append(
            f"{folder}: no color sequence (color.<frame>.png); the color video is required, "
            f"found only {', '.join(sorted(found))}"
        )
    sequences = {}
    for modality in sorted(found, key=MODALITIES.index):
        _check_numbers(folder, modality, found[modality], problems)
        size = _common_size(folder, modality, found[modality], problems)
        if size:
            sequences[modality] = Sequence(modality, found[modality], size)
    _check_across(folder, sequences, problems)
    if problems:
        raise ValidationError(problems)
    return sequences


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk (the first 24 bytes), None if not a PNG.

    Reading the header, not the image, keeps the check of a 5000-frame folder fast."""
    with path.open("rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _scan(folder: Path, problems: list[str]) -> dict[str, dict[int, Path]]:
    """Frames by modality and number; unexpected files and duplicate numbers are problems.

    Hidden files (.DS_Store) and sub-folders (such as the output folder) are ignored."""
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        match = FRAME_NAME.fullmatch(path.name)
        modality = match["modality"] if match else None
        if modality not in MODALITIES:
            problems.append(f"{path}: unexpected file; {_naming_hint(modality)}")
            continue
        number = int(match["number"])
        frames = found.setdefault(modality, {})
        if number in frames:
            problems.append(
                f"{path}: frame {number} of {modality} again (also {frames[number].name})"
            )
            continue
        frames[number] = path
    return found


def _naming_hint(modality: str | None) -> str:
    expected = f"expected <modality>.<frame>.png with modality one of {', '.join(MODALITIES)}"
    if modality is None:
        return expected
    name = modality.lower()
    close = [ALIASES[name]] if name in ALIASES else difflib.get_close_matches(name, MODALITIES, 1)
    return f"did you mean '{close[0]}'? ({expected})" if close else expected


def _check_numbers(
    folder: Path, modality: str, frames: dict[int, Path], problems: list[str]
) -> None:
    """Every number between the first and the last frame must be there."""
    numbers = sorted(frames)
    gaps = [(a, b) for a, b in itertools.pairwise(numbers) if b - a > 1]
    for a, b in gaps[:NAMED]:
        missing = f"frame {a + 1}" if b - a == 2 else f"frames {a + 1}–{b - 1}"
        problems.append(
            f"{folder}: {modality}: gap: {frames[a].name} is followed by {frames[b].name} "
            f"({missing} missing)"
        )
    if len(gaps) > NAMED:
        problems.append(f"{folder}: {modality}: and {len(gaps) - NAMED} more gap(s)")


def _common_size(
    folder: Path, modality: str, frames: dict[int, Path], problems: list[str]
) -> tuple[int, int] | None:
    """The size most frames of the sequence have; frames of another size, or not PNGs at
    all, are problems naming them. None when no frame could be read."""
    sizes = {number: png_size(path) for number, path in frames.items()}
    for number in sorted(n for n, size in sizes.items() if size is None)[:NAMED]:
        problems.append(f"{frames[number]}: not a PNG file (no PNG signature and header)")
    counted = Counter(size for size in sizes.values() if size)
    if not counted:
        return None
    common = counted.most_common(1)[0][0]
    odd = sorted(n for n, size in sizes.items() if size and size != common)
    for number in odd[:NAMED]:
        problems.append(
            f"{frames[number]}: {_size(sizes[number])}, but the other {modality} frames are "
            f"{_size(common)}"
        )
    if len(odd) > NAMED:
        problems.append(f"{folder}: {modality}: and {len(odd) - NAMED} more frame(s) of odd size")
    if common[0] % 2 or common[1] % 2:
        problems.append(
            f"{folder}: {modality} frames are {_size(common)}: the mp4v encoder needs an even "
            "width and height (it would silently drop a row or column); crop or pad by one pixel"
        )
    return common


def _check_across(folder: Path, sequences: dict[str, Sequence], problems: list[str]) -> None:
    """Every control sequence has the color sequence's frame numbers and size."""
    color = sequences.get("color")
    if not color:
        return
    for modality, sequence in sequences.items():
        if modality == "color":
            continue
        if set(sequence.frames) != set(color.frames):
            problems.append(
                f"{folder}: {modality} has {_span(sequence.frames)} but color has "
                f"{_span(color.frames)}; each control needs a frame for every color frame"
            )
        if sequence.size != color.size:
            problems.append(
                f"{folder}: {modality} frames are {_size(sequence.size)} but color frames are "
                f"{_size(color.size)}"
            )


def _write_video(sequence: Sequence, tmp: Path, fps: float) -> None:
    """Encode one sequence into the (temporary) mp4 `tmp`."""
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, sequence.size)
    if not writer.isOpened():
        raise ValidationError(f"{tmp}: OpenCV cannot write {FOURCC} video here")
    try:
        for path in sequence.ordered:
            writer.write(_read_frame(path, sequence.size))
    finally:
        writer.release()


def _read_frame(path: Path, size: tuple[int, int]) -> Any:
    """A frame as 8-bit BGR (16-bit and grey PNGs are converted), checked against `size`."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValidationError(f"{path}: the PNG does not decode (damaged file)")
    if (image.shape[1], image.shape[0]) != size:
        raise ValidationError(
            f"{path}: decodes to {image.shape[1]}×{image.shape[0]}, its header says {_size(size)}"
        )
    return image


def _read_back(sequence: Sequence, video: Path, final: Path, fps: float) -> PreparedVideo:
    """Probe a written video and check that it holds what the sequence held; the result
    names `final`, where the video will be once renamed."""
    info = probe(video, exact=True)
    expected = (len(sequence.frames), sequence.size)
    if (info.frames, info.size) != expected or abs(info.fps - fps) > FPS_READ_BACK_TOLERANCE:
        raise ValidationError(
            f"{video}: wrote {len(sequence.frames)} frames of {_size(sequence.size)} at "
            f"{fps:g} fps but read back {info.frames} of {_size(info.size)} at {info.fps:g}"
        )
    numbers = sorted(sequence.frames)
    return PreparedVideo(
        modality=sequence.modality,
        path=final,
        frames=info.frames,
        width=info.width,
        height=info.height,
        fps=info.fps,
        first_frame=numbers[0],
        last_frame=numbers[-1],
    )


def _span(frames: dict[int, Path]) -> str:
    numbers = sorted(frames)
    return f"{len(numbers)} frames ({numbers[0]}–{numbers[-1]})"


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"
