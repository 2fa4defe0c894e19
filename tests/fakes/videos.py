"""Real videos and PNG frame sequences for tests: written with OpenCV or ffmpeg, and read back
with ffprobe as an independent reference."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

# ffprobe's codec names, as OpenCV's fourcc spells them.
FOURCC_OF = {"h264": "h264", "mpeg4": "FMP4", "mjpeg": "MJPG", "vp9": "VP90", "vp8": "VP80"}
FFPROBE = ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_streams"]
FFPROBE += ["-show_format", "-of", "json"]


def make_mp4(path: Path, frames: int = 8, size: tuple[int, int] = (64, 48)) -> Path:
    """Write a real, decodable mp4 (fourcc mp4v) of `frames` frames of `size` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    try:
        for index in range(frames):
            frame = np.full((height, width, 3), (index * 30) % 256, dtype=np.uint8)
            writer.write(frame)
    finally:
        writer.release()
    assert path.stat().st_size > 0
    return path


def make_video(path: Path, size: str, rate: str, frames: int, *codec: str) -> Path:
    """Encode `frames` frames of FFmpeg's test pattern with ffmpeg itself (not OpenCV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *source, "-frames:v", str(frames), *codec, str(path)],
        check=True,
    )
    return path


def ffprobe(path: Path) -> dict:
    """ffprobe's facts of the first video stream, with an exact (decoded) frame count."""
    done = subprocess.run(
        [*FFPROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(done.stdout)
    stream, fmt = data["streams"][0], data["format"]
    return {
        "width": stream["width"],
        "height": stream["height"],
        "fps": float(Fraction(stream["r_frame_rate"])),
        "frames": int(stream["nb_read_frames"]),
        "duration": float(stream.get("duration") or fmt["duration"]),
        "codec": FOURCC_OF.get(stream["codec_name"], stream["codec_name"]),
    }


def shade(number: int) -> int:
    """A grey level that tells frames apart after mp4v's lossy coding (steps of 20)."""
    return (number * 20) % 240 + 10


def write_sequence(
    folder: Path,
    modality: str,
    numbers: range | list[int],
    size: tuple[int, int] = (64, 48),
    digits: int = 4,
) -> list[Path]:
    """PNG frames `<modality>.<number>.png`, each a flat grey of shade(number)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in numbers:
        path = folder / f"{modality}.{number:0{digits}d}.png"
        image = np.full((size[1], size[0], 3), shade(number), dtype=np.uint8)
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths
