"""Video facts read with OpenCV (its FFmpeg backend); a file that cannot be read raises a
ValidationError naming it, never a made-up value.

The frame count is exact, and cheap where the file lets us trust it:

- By default we read the container's frame count, decode the first frame (the codec works,
  the stream starts), and count the video packets without decoding them (OpenCV's raw
  stream mode: milliseconds, however long the video). One packet per frame, as many as the
  container says: every frame's data is in the file, and the count is the container's.
- Where the packets and the container disagree (a truncated file, an index that lies), or
  with ``exact=True``, every frame is decoded and counted. A decoded count that differs from
  the container's is an error naming both numbers: the file is truncated or damaged, and
  Cosmos would read a different number of frames than we report.
- A container that gives neither a frame count nor a duration (a raw stream, a live
  recording, a damaged header) is refused: FFmpeg then reports a default frame rate (25)
  that says nothing about the file, and we do not pass a guess on as a fact.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from cosmos_driver.errors import ValidationError

log = logging.getLogger(__name__)

# FFmpeg and OpenCV print their own complaints about broken files on stderr ("moov atom not
# found"); we report each problem once, in our words. Set these variables yourself to see
# theirs (read when OpenCV first opens a video, so this must run before that).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# Still images open as one-frame "videos" with FFmpeg's default rate: refuse them by name.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".exr", ".ppm"}
)
# A container count above this (about 4.6 days at 25 fps) is garbage, not a count.
MAX_PLAUSIBLE_FRAMES = 10_000_000


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. `frames` is exact (see the module docstring);
    `container_frames` is what the container says, kept so a report can show both;
    `decoded` says whether every frame was decoded to count them; `codec` is OpenCV's
    fourcc of the codec (`h264`, `FMP4` for MPEG-4 part 2, `MJPG`, `VP90`), None if it has
    none."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    codec: str | None
    container_frames: int
    decoded: bool

    @property
    def duration(self) -> float:
        """Seconds: frames / fps (both read from the file, so the duration is too)."""
        return self.frames / self.fps

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def to_json(self) -> dict[str, Any]:
        """The facts as plain JSON values, for `--json` output and run records."""
        return {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frames": self.frames,
            "duration": round(self.duration, 6),
            "codec": self.codec,
            "container_frames": self.container_frames,
            "decoded": self.decoded,
        }


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    fps: float
    codec: str | None
    container_frames: int


def probe(path: Path, exact: bool = False) -> VideoInfo:
    """Width, height, fps, codec and the exact frame count of `path`.

    `exact=True` decodes every frame even where the packets confirm the container's count.
    Raises ValidationError naming the file when it is missing, not a video, has no frames,
    or is truncated or damaged."""
    path = Path(path)
    _check_is_video_file(path)
    capture = _open(path)
    try:
        header = _read_header(path, capture)
        first_decodes = capture.grab()
    finally:
        capture.release()
    if not first_decodes:
        raise ValidationError(
            f"{path}: its first frame does not decode (damaged, or a codec this FFmpeg "
            f"lacks: {header.codec or 'unknown'})"
        )
    if not exact and _packet_count(path) == header.container_frames:
        frames, decoded = header.container_frames, False
    else:
        frames, decoded = _decoded_count(path, header.container_frames), True
    log.debug("probed %s: %d frames (decoded: %s)", path, frames, decoded)
    return VideoInfo(
        path=path,
        width=header.width,
        height=header.height,
        fps=header.fps,
        frames=frames,
        codec=header.codec,
        container_frames=header.container_frames,
        decoded=decoded,
    )


def fourcc_text(value: float) -> str | None:
    """OpenCV's CAP_PROP_FOURCC as text (`h264`, `FMP4`), None when it is not four
    printable characters (no tag, or an error value)."""
    number = int(value)
    if number <= 0 or number >= 2**32:
        return None
    text = number.to_bytes(4, "little").decode("latin-1")
    return text if text.isprintable() and text.strip() else None


def _check_is_video_file(path: Path) -> None:
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if path.is_dir():
        raise ValidationError(f"{path}: is a folder, not a video file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValidationError(
            f"{path}: a still image ({path.suffix}), not a video; turn an image sequence "
            "into videos with `cosmos prepare`"
        )
    if path.stat().st_size == 0:
        raise ValidationError(f"{path}: empty file (0 bytes), not a video")


def _open(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise ValidationError(f"{path}: {_why_unopenable(path)}")
    return capture


def _why_unopenable(path: Path) -> str:
    """The most specific reason we can give for a file FFmpeg refuses to open."""
    boxes = _mp4_top_level_boxes(path)
    if boxes and boxes[0] == "ftyp" and "moov" not in boxes:
        return (
            "truncated MP4/MOV: it has no index (moov box), so it was cut short while being "
            "written or copied; write or copy it again"
        )
    return (
        "not a readable video: FFmpeg cannot open it (not a video, no video stream or no "
        "frames, or a damaged header)"
    )


def _mp4_top_level_boxes(path: Path) -> list[str]:
    """The types of the top-level boxes of an MP4/MOV file (ISO/IEC 14496-12 §4.2), as far as
    they can be walked; a box that runs past the end of the file ends the walk."""
    types: list[str] = []
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as handle:
        while offset + 8 <= size and len(types) < 64:
            handle.seek(offset)
            head = handle.read(16)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8].decode("latin-1")
            if length == 1 and len(head) == 16:
                length = int.from_bytes(head[8:16], "big")
            elif length == 0:
                length = size - offset
            if length < 8 or offset + length > size:
                break
            types.append(kind)
            offset += length
    return types


def _read_header(path: Path, capture: cv2.VideoCapture) -> _Header:
    """The container's facts; each one missing or absurd is an error, never a default."""
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    if width <= 0 or height <= 0:
        raise ValidationError(f"{path}: no picture size in its header (damaged or not a video)")
    if not math.isfinite(fps) or fps <= 0:
        raise ValidationError(f"{path}: no frame rate in its header (damaged or not a video)")
    if not math.isfinite(count) or not 0 < count <= MAX_PLAUSIBLE_FRAMES:
        raise ValidationError(
            f"{path}: its container gives neither a frame count nor a duration (a raw "
            "stream, a live recording or a damaged header), so its frame rate is unknown; "
            f"re-encode it with the rate it was shot at: ffmpeg -r FPS -i {path} "
            "-c:v libx264 -pix_fmt yuv420p fixed.mp4"
        )
    codec = fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
    return _Header(width, height, fps, codec, int(count))


def _packet_count(path: Path) -> int:
    """The number of video packets, read without decoding (OpenCV's raw stream mode,
    CAP_PROP_FORMAT -1); -1 if the file will not open that way."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    packets = 0
    try:
        if not capture.isOpened():
            return -1
        while capture.grab():
            packets += 1
    finally:
        capture.release()
    return packets


def _decoded_count(path: Path, container_frames: int) -> int:
    """Decode every frame (a fresh capture, from the start) and compare with the container."""
    capture = _open(path)
    decoded = 0
    try:
        while capture.grab():
            decoded += 1
    finally:
        capture.release()
    if decoded == 0:
        raise ValidationError(
            f"{path}: no decodable frames (its container says {container_frames}): damaged or "
            "not a video"
        )
    if decoded < container_frames:
        raise ValidationError(
            f"{path}: truncated or damaged: its container says {container_frames} frames "
            f"but only {decoded} decode"
        )
    if decoded > container_frames:
        raise ValidationError(
            f"{path}: damaged container: it says {container_frames} frames but {decoded} "
            "decode; re-encode it (ffmpeg -i FILE -c:v libx264 -pix_fmt yuv420p fixed.mp4)"
        )
    return decoded
