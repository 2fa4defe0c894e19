"""video.probe against ffprobe on real files of several codecs, containers, sizes, rates and
lengths; truncated, corrupt, empty and non-video files give errors naming the file."""

from __future__ import annotations

import random
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from cosmos_driver.errors import ValidationError
from cosmos_driver.video import probe
from tests.fakes.videos import ffprobe, make_video

# ffprobe's codec_name → the fourcc OpenCV reports for that codec.
YUV = ["-pix_fmt", "yuv420p"]
# (file name, size, rate, frames, encoder arguments): codecs, containers, sizes, rates, lengths.
CASES = [
    ("mpeg4.mp4", "320x240", "24", 48, ["-c:v", "mpeg4"]),
    (
        "x264_ntsc.mp4",
        "640x360",
        "30000/1001",
        90,
        ["-c:v", "libx264", "-preset", "ultrafast", *YUV],
    ),
    (
        "x264_bframes.mp4",
        "1280x704",
        "24",
        30,
        ["-c:v", "libx264", "-preset", "fast", "-bf", "3", *YUV],
    ),
    ("mjpeg.avi", "176x144", "25", 50, ["-c:v", "mjpeg"]),
    ("x264.mkv", "320x180", "30", 45, ["-c:v", "libx264", "-preset", "ultrafast", *YUV]),
    ("vp9.webm", "160x120", "30", 31, ["-c:v", "libvpx-vp9", "-deadline", "realtime"]),
    ("mjpeg.mov", "240x320", "24000/1001", 20, ["-c:v", "mjpeg"]),
    ("mpeg4_long.mp4", "96x64", "12.5", 300, ["-c:v", "mpeg4", "-g", "250"]),
    ("one_frame.mp4", "64x48", "24", 1, ["-c:v", "mpeg4"]),
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {name: make_video(folder / name, s, r, n, *codec) for name, s, r, n, codec in CASES}


def test_tools_are_installed():
    """The comparisons below need ffmpeg and ffprobe: say so loudly if they are missing."""
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "apt-get install -y ffmpeg"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_value_agrees_with_ffprobe(videos, case):
    name, _, rate, frames, _ = case
    info, truth = probe(videos[name]), ffprobe(videos[name])
    assert (info.width, info.height) == (truth["width"], truth["height"])
    assert info.fps == pytest.approx(truth["fps"], rel=1e-9)
    assert info.fps == pytest.approx(float(Fraction(rate)), rel=1e-9)
    assert info.frames == truth["frames"] == frames
    assert info.duration == pytest.approx(truth["duration"], abs=0.002)
    assert info.codec == truth["codec"]
    assert info.container_frames == frames


@pytest.mark.parametrize("name", ["x264_bframes.mp4", "mjpeg.avi", "x264.mkv", "vp9.webm"])
def test_exact_decodes_every_frame_and_agrees(videos, name):
    cheap, exact = probe(videos[name]), probe(videos[name], exact=True)
    assert exact.decoded and not cheap.decoded
    assert exact.frames == cheap.frames == ffprobe(videos[name])["frames"]


def test_healthy_file_is_confirmed_without_decoding_it_all(videos):
    info = probe(videos["mpeg4_long.mp4"])
    assert not info.decoded and info.frames == 300


def test_to_json_carries_every_value(videos):
    data = probe(videos["x264_ntsc.mp4"]).to_json()
    assert data["frames"] == 90 and data["codec"] == "h264"
    assert data["duration"] == pytest.approx(3.003, abs=1e-6)
    assert data["path"] == str(videos["x264_ntsc.mp4"])


def _half(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return target


def test_mp4_cut_in_half_names_the_file_and_the_missing_index(videos, tmp_path):
    cut = _half(videos["mpeg4.mp4"], tmp_path / "cut.mp4")
    with pytest.raises(ValidationError, match="truncated MP4") as caught:
        probe(cut)
    assert str(cut) in str(caught.value)


@pytest.mark.parametrize(
    ("name", "frames", "codec"),
    [
        (
            "faststart.mp4",
            96,
            ["-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart", *YUV],
        ),
        ("cut.avi", 60, ["-c:v", "mjpeg"]),
        ("cut.mkv", 60, ["-c:v", "libx264", "-preset", "ultrafast", *YUV]),
    ],
)
def test_cut_file_with_its_header_names_both_counts(tmp_path, name, frames, codec):
    whole = make_video(tmp_path / f"whole-{name}", "320x240", "24", frames, *codec)
    cut = _half(whole, tmp_path / name)
    with pytest.raises(ValidationError) as caught:
        probe(cut)
    message = str(caught.value)
    assert str(cut) in message
    assert f"says {frames} frames" in message and "truncated" in message


def test_random_bytes_are_not_a_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(random.Random(5).randbytes(20_000))
    with pytest.raises(ValidationError, match="not a readable video") as caught:
        probe(junk)
    assert str(junk) in str(caught.value)


@pytest.mark.parametrize("name", ["mpeg4.mp4", "x264_ntsc.mp4", "mjpeg.avi", "x264.mkv"])
def test_overwritten_header_gives_a_named_error(videos, tmp_path, name):
    data = bytearray(videos[name].read_bytes())
    data[:64] = random.Random(7).randbytes(64)
    broken = tmp_path / name
    broken.write_bytes(bytes(data))
    with pytest.raises(ValidationError) as caught:
        probe(broken)
    assert str(broken) in str(caught.value)


def _overwrite_media_data(source: Path, target: Path) -> Path:
    """A copy of an MP4/MOV whose mdat box (the frames) is random bytes; the index is kept."""
    data = bytearray(source.read_bytes())
    offset = 0
    while data[offset + 4 : offset + 8] != b"mdat":
        offset += int.from_bytes(data[offset : offset + 4], "big")
    size = int.from_bytes(data[offset : offset + 4], "big")
    data[offset + 8 : offset + size] = random.Random(3).randbytes(size - 8)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("name", ["mjpeg.mov", "x264_ntsc.mp4"])
def test_frames_replaced_by_random_bytes_give_a_named_error(videos, tmp_path, name):
    broken = _overwrite_media_data(videos[name], tmp_path / name)
    with pytest.raises(ValidationError, match="first frame does not decode") as caught:
        probe(broken)
    assert str(broken) in str(caught.value)


def test_zero_frame_video_is_an_error(tmp_path):
    empty = make_video(tmp_path / "zero.mp4", "64x48", "24", 0, "-c:v", "mpeg4")
    with pytest.raises(ValidationError, match=r"zero\.mp4"):
        probe(empty)


def test_live_recording_without_count_or_duration_is_refused_not_guessed(tmp_path):
    live = make_video(
        tmp_path / "live.webm", "64x48", "30", 20, "-c:v", "libvpx", "-live", "1", "-f", "webm"
    )
    with pytest.raises(ValidationError, match="frame rate is unknown") as caught:
        probe(live)
    assert str(live) in str(caught.value)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.mkdir(), p)[1], "is a folder"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p: (p.write_text("hello\n"), p)[1], "not a readable video"),
    ],
    ids=["missing", "folder", "empty", "text"],
)
def test_not_a_video_is_named(tmp_path, make, expected):
    path = make(tmp_path / "input.mp4")
    with pytest.raises(ValidationError, match=expected) as caught:
        probe(path)
    assert str(path) in str(caught.value)


def test_still_image_is_refused_by_name(tmp_path):
    image = tmp_path / "frame.png"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48",
            "-frames:v",
            "1",
            str(image),
        ],
        check=True,
    )
    with pytest.raises(ValidationError, match="still image") as caught:
        probe(image)
    assert str(image) in str(caught.value)
