"""Thumbnails: a small JPEG of the first and the middle frame of a video, kept with the run
record so the status views and a report can show what went in and what came out without
decoding the videos again."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2

from cosmos_driver.errors import ValidationError
from cosmos_driver.store import write_bytes_atomic
from cosmos_driver.video import probe

log = logging.getLogger(__name__)

MAX_WIDTH = 320
JPEG_QUALITY = 85


def write_thumbnails(video: Path, dest_dir: Path, stem: str) -> list[Path]:
    """Write `<stem>.first.jpg` and `<stem>.middle.jpg` (at most MAX_WIDTH wide, aspect
    kept) of `video` into `dest_dir`, each atomically; returns their paths.

    Raises ValidationError naming the video when it cannot be read (see video.probe)."""
    info = probe(video)
    dest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for label, index in (("first", 0), ("middle", info.frames // 2)):
        image = _scaled(_frame(video, index))
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValidationError(f"{video}: frame {index} could not be encoded as JPEG")
        target = dest_dir / f"{stem}.{label}.jpg"
        write_bytes_atomic(target, data.tobytes())
        written.append(target)
    log.debug("thumbnails of %s: %s", video, ", ".join(p.name for p in written))
    return written


class SharedThumbnails:
    """write_thumbnails once per input file, hard links after: the runs of a sweep share one
    input, and 10,000 runs must not decode it 10,000 times nor store 10,000 copies."""

    def __init__(self) -> None:
        self.made: dict[tuple[Path, int, int, int], list[Path]] = {}

    def write(self, video: Path, dest_dir: Path, stem: str) -> list[Path]:
        """The thumbnails of `video` in `dest_dir`, as write_thumbnails names them."""
        stat = video.stat()
        key = (video.resolve(), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        made = self.made.get(key)
        if made:
            try:
                return [_link(source, dest_dir, stem) for source in made]
            except OSError:
                log.debug("thumbnails of %s: cannot link, writing them again", video)
        written = write_thumbnails(video, dest_dir, stem)
        self.made[key] = written
        return written


def _link(source: Path, dest_dir: Path, stem: str) -> Path:
    """Hard-link `source` (`<other stem>.<label>.jpg`) as `<stem>.<label>.jpg` in `dest_dir`."""
    label = source.name.rsplit(".", 2)[-2]
    target = dest_dir / f"{stem}.{label}.jpg"
    dest_dir.mkdir(parents=True, exist_ok=True)
    temporary = dest_dir / f".{target.name}.link"
    temporary.unlink(missing_ok=True)
    temporary.hardlink_to(source)
    temporary.replace(target)
    return target


def _frame(video: Path, index: int) -> Any:
    """Frame `index` of `video`: by seeking, else (if the seek misses) by decoding forward."""
    image = _seek_and_read(video, index) if index else None
    if image is None:
        image = _decode_and_read(video, index)
    if image is None:
        raise ValidationError(f"{video}: frame {index} does not decode")
    return image


def _seek_and_read(video: Path, index: int) -> Any:
    """Seek to frame `index` and read it; None unless OpenCV lands exactly there."""
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    try:
        if not capture.set(cv2.CAP_PROP_POS_FRAMES, index):
            return None
        ok, image = capture.read()
        landed = int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == index + 1
    finally:
        capture.release()
    return image if ok and landed else None


def _decode_and_read(video: Path, index: int) -> Any:
    """Decode from the start up to frame `index` and read it; None if the file ends first."""
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    try:
        for _ in range(index):
            if not capture.grab():
                return None
        ok, image = capture.read()
    finally:
        capture.release()
    return image if ok else None


def _scaled(image: Any) -> Any:
    """At most MAX_WIDTH wide, the same shape; a narrower frame is kept as it is."""
    height, width = image.shape[:2]
    if width <= MAX_WIDTH:
        return image
    new_height = max(1, round(height * MAX_WIDTH / width))
    return cv2.resize(image, (MAX_WIDTH, new_height), interpolation=cv2.INTER_AREA)
