"""Thumbnails: the first and the middle frame, at most 320 px wide, written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cosmos_driver.errors import ValidationError
from cosmos_driver.thumbnails import MAX_WIDTH, SharedThumbnails, write_thumbnails
from tests.fakes.videos import make_video


def shaded_video(path: Path, frames: int, size: tuple[int, int], base: int = 10) -> Path:
    """A video whose frame n is a flat grey of base + 8n: a thumbnail tells which frame it is."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, size)
    assert writer.isOpened()
    for number in range(frames):
        writer.write(np.full((size[1], size[0], 3), base + 8 * number, dtype=np.uint8))
    writer.release()
    return path


def grey(path: Path) -> float:
    return float(cv2.imread(str(path)).mean())


def test_first_and_middle_frames_scaled_to_320_wide(tmp_path):
    video = shaded_video(tmp_path / "out.mp4", 25, (640, 360))
    first, middle = write_thumbnails(video, tmp_path / "thumbs", "output")
    assert (first.name, middle.name) == ("output.first.jpg", "output.middle.jpg")
    for thumb in (first, middle):
        assert cv2.imread(str(thumb)).shape == (180, MAX_WIDTH, 3)
    assert grey(first) == pytest.approx(10, abs=4)
    assert grey(middle) == pytest.approx(10 + 8 * 12, abs=4)  # frame 25 // 2 = 12
    assert sorted(p.name for p in (tmp_path / "thumbs").iterdir()) == [
        "output.first.jpg",
        "output.middle.jpg",
    ]


def test_middle_frame_of_a_long_gop_h264_video(tmp_path):
    """ffmpeg's x264 with one key frame: the middle frame is reached by decoding forward."""
    video = make_video(
        tmp_path / "in.mp4",
        "1280x704",
        "24",
        40,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "1000",
        "-pix_fmt",
        "yuv420p",
    )
    first, middle = write_thumbnails(video, tmp_path, "color")
    thumb = cv2.imread(str(middle)).astype(float)
    assert thumb.shape == (176, 320, 3)
    capture = cv2.VideoCapture(str(video))
    decoded = [capture.read()[1] for _ in range(40)]
    capture.release()
    scaled = [cv2.resize(f, (320, 176), interpolation=cv2.INTER_AREA) for f in decoded]

    def nearest(image: np.ndarray) -> int:
        return int(np.argmin([np.abs(image.astype(float) - f).mean() for f in scaled]))

    assert (nearest(cv2.imread(str(first))), nearest(thumb)) == (0, 20)


def test_small_video_keeps_its_size_and_one_frame_is_its_own_middle(tmp_path):
    video = shaded_video(tmp_path / "tiny.mp4", 1, (160, 120))
    first, middle = write_thumbnails(video, tmp_path, "tiny")
    assert cv2.imread(str(first)).shape == (120, 160, 3)
    assert grey(first) == pytest.approx(grey(middle), abs=0.5)


def test_unreadable_video_is_named_and_nothing_is_written(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 4096)
    with pytest.raises(ValidationError) as caught:
        write_thumbnails(broken, tmp_path / "thumbs", "broken")
    assert str(broken) in str(caught.value)
    assert not (tmp_path / "thumbs").exists()


def test_rewriting_replaces_the_files_and_leaves_no_temporary_ones(tmp_path):
    video = shaded_video(tmp_path / "v.mp4", 9, (64, 48))
    write_thumbnails(video, tmp_path / "t", "v")
    brighter = shaded_video(tmp_path / "w.mp4", 9, (64, 48), base=150)
    first, _ = write_thumbnails(brighter, tmp_path / "t", "v")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["v.first.jpg", "v.middle.jpg"]
    assert grey(first) == pytest.approx(150, abs=4)


def test_shared_thumbnails_decode_an_input_once_and_link_it_into_each_run(tmp_path, monkeypatch):
    video = shaded_video(tmp_path / "v.mp4", 4, (64, 48))
    shared = SharedThumbnails()
    first = shared.write(video, tmp_path / "run-1", "input-color")
    monkeypatch.setattr(
        "cosmos_driver.thumbnails.write_thumbnails", lambda *_: pytest.fail("decoded again")
    )
    second = shared.write(video, tmp_path / "run-2", "input-color")
    assert [p.name for p in second] == ["input-color.first.jpg", "input-color.middle.jpg"]
    for one, other in zip(first, second, strict=True):
        assert one.stat().st_ino == other.stat().st_ino, "a hard link, not a copy"


def test_shared_thumbnails_are_written_again_when_the_first_copy_is_gone(tmp_path):
    video = shaded_video(tmp_path / "v.mp4", 4, (64, 48))
    shared = SharedThumbnails()
    for path in shared.write(video, tmp_path / "run-1", "input-color"):
        path.unlink()
    again = shared.write(video, tmp_path / "run-2", "input-color")
    assert [p.name for p in again] == ["input-color.first.jpg", "input-color.middle.jpg"]
    assert all(p.stat().st_size > 0 for p in again)
