"""Video facts read with OpenCV; a file that cannot be read raises, never a made-up value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

from cosmos_driver.errors import ValidationError


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frames: int


def probe(path: Path) -> VideoInfo:
    """Width, height, fps and the decoded frame count of `path`."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValidationError(f"{path}: not a readable video")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames = 0
        while capture.grab():
            frames += 1
    finally:
        capture.release()
    if frames == 0:
        raise ValidationError(f"{path}: no decodable frames")
    return VideoInfo(path, width, height, fps, frames)
