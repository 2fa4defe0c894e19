"""Video metadata: cosmos_driver.video.probe against ffprobe, on the same files, in the same run.

It encodes a set of videos with ffmpeg (codecs mpeg4, libx264, mjpeg, vp9; containers mp4,
avi, mkv, mov, webm; sizes from 320×240 to 1920×1080; 24, 25, 30 and 29.97 fps; 1 to 600
frames) into bench/.work/video_metadata/ (kept between runs), then, R times over, reads each
file four ways:

- probe(path): the container's count confirmed by counting packets, first frame decoded;
- ffprobe reading the container's header (its usual use);
- probe(path, exact=True): every frame decoded;
- ffprobe -count_frames: every frame decoded.

It prints, for each way, the sum over the files of its median time, the ratios ours/ffprobe,
and, for every file, its times and whether each value (width, height, fps, frames, duration,
codec) agrees with ffprobe's. ffprobe runs as a process, as a driver calling it would; probe
runs in-process, as the driver calls it.

    .venv/bin/python -m bench.video_metadata [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from cosmos_driver.video import VideoInfo, probe

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work" / "video_metadata"
YUV = ("-pix_fmt", "yuv420p")
X264 = ("-c:v", "libx264", "-preset", "ultrafast", *YUV)

# (file name, size, rate, frames, encoder arguments)
CASES: list[tuple[str, str, str, int, tuple[str, ...]]] = [
    ("x264_1080p_24.mp4", "1920x1080", "24", 121, X264),
    ("x264_704p_30.mp4", "1280x704", "30", 121, (*X264, "-bf", "2")),
    ("x264_portrait_2997.mp4", "704x1280", "30000/1001", 90, X264),
    ("x264_long_24.mp4", "1280x704", "24", 600, X264),
    ("x264_2997.mkv", "640x360", "30000/1001", 150, X264),
    ("mpeg4_704p_24.mp4", "1280x704", "24", 121, ("-c:v", "mpeg4", "-q:v", "5")),
    ("mpeg4_vga_25.mp4", "640x480", "25", 250, ("-c:v", "mpeg4")),
    ("mpeg4_one_frame.mp4", "320x240", "24", 1, ("-c:v", "mpeg4")),
    ("mjpeg_960_25.avi", "960x704", "25", 60, ("-c:v", "mjpeg")),
    ("mjpeg_qvga_30.mov", "320x240", "30", 45, ("-c:v", "mjpeg")),
    ("vp9_qvga_30.webm", "320x240", "30", 60, ("-c:v", "libvpx-vp9", "-deadline", "realtime")),
    ("x264_square_25.mp4", "960x960", "25", 75, X264),
]
FOURCC_OF = {"h264": "h264", "mpeg4": "FMP4", "mjpeg": "MJPG", "vp9": "VP90", "vp8": "VP80"}
FFPROBE = ("ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json")
FFPROBE_HEADER = (*FFPROBE, "-show_streams", "-show_format")
FFPROBE_COUNT = (*FFPROBE, "-count_frames", "-show_streams", "-show_format")
VALUES = ("width", "height", "fps", "frames", "duration", "codec")
# (file, our facts, ffprobe's values, the names of the values that disagree)
Row = tuple[Path, VideoInfo, dict[str, object], list[str]]


def generate() -> list[Path]:
    """Encode the missing videos (the names say how they were made); return all paths."""
    WORK.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, size, rate, frames, codec in CASES:
        path = WORK / name
        if not path.exists():
            source = ("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}")
            command = ("ffmpeg", "-v", "error", "-y", *source, "-frames:v", str(frames), *codec)
            subprocess.run([*command, str(path)], check=True)
        paths.append(path)
    return paths


def ffprobe(path: Path, count: bool) -> dict:
    done = subprocess.run(
        [*(FFPROBE_COUNT if count else FFPROBE_HEADER), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def ffprobe_values(data: dict) -> dict[str, object]:
    """ffprobe's answer in our terms: fps from r_frame_rate, codec as OpenCV's fourcc."""
    stream, fmt = data["streams"][0], data["format"]
    return {
        "width": stream["width"],
        "height": stream["height"],
        "fps": float(Fraction(stream["r_frame_rate"])),
        "frames": int(stream["nb_read_frames"]),
        "duration": float(stream.get("duration") or fmt["duration"]),
        "codec": FOURCC_OF.get(stream["codec_name"], stream["codec_name"]),
    }


def agrees(key: str, ours: object, theirs: object) -> bool:
    """fps to a millionth; duration to 2 ms (ffprobe prints microseconds; Matroska keeps ms)."""
    if key == "fps":
        return abs(float(ours) / float(theirs) - 1) < 1e-6
    if key == "duration":
        return abs(float(ours) - float(theirs)) <= 0.002
    return ours == theirs


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(paths: list[Path], repeats: int) -> dict[str, dict[Path, float]]:
    """Median seconds over `repeats` of each way on each file; the four ways are interleaved
    file by file, so that a busy moment of the machine hits them alike."""
    ways: dict[str, Callable[[Path], object]] = {
        "ours": lambda p: probe(p),
        "ffprobe": lambda p: ffprobe(p, count=False),
        "ours_exact": lambda p: probe(p, exact=True),
        "ffprobe_count": lambda p: ffprobe(p, count=True),
    }
    samples: dict[str, dict[Path, list[float]]] = {w: {p: [] for p in paths} for w in ways}
    for _ in range(repeats):
        for path in paths:
            for way, action in ways.items():
                samples[way][path].append(timed(lambda a=action, p=path: a(p)))
    return {
        way: {path: statistics.median(values) for path, values in per_file.items()}
        for way, per_file in samples.items()
    }


def compare(paths: list[Path]) -> list[Row]:
    """For each file: our facts, ffprobe's (decoded count), and the values that disagree."""
    rows = []
    for path in paths:
        info = probe(path)
        ours = {key: getattr(info, key) for key in VALUES}
        theirs = ffprobe_values(ffprobe(path, count=True))
        wrong = [key for key in VALUES if not agrees(key, ours[key], theirs[key])]
        rows.append((path, info, theirs, wrong))
    return rows


def print_timings(times: dict[str, dict[Path, float]], repeats: int) -> None:
    files = len(times["ours"])
    total = {way: sum(per_file.values()) for way, per_file in times.items()}
    print(f"video_metadata: {files} files; per file the median of {repeats} runs, summed")
    lines = [
        ("ours: probe() (count confirmed by the packets)", total["ours"]),
        ("ffprobe: container header", total["ffprobe"]),
        ("ours: probe(exact=True) (every frame decoded)", total["ours_exact"]),
        ("ffprobe -count_frames (every frame decoded)", total["ffprobe_count"]),
    ]
    for label, seconds in lines:
        print(f"  {label:<52} {seconds:8.3f} s  {1000 * seconds / files:8.1f} ms/file")
    default, decoding = (
        total["ours"] / total["ffprobe"],
        total["ours_exact"] / total["ffprobe_count"],
    )
    print(f"  ratio ours / ffprobe, default ways: {default:.3f}")
    print(f"  ratio ours / ffprobe, decoding all: {decoding:.3f}")


def print_agreement(rows: list[Row], times: dict[str, dict[Path, float]]) -> int:
    """One line per file, with its times in ms (ours, ffprobe; then both decoding every
    frame); returns the number of values that disagree."""
    print("agreement with ffprobe (✓: equal; fps to 1e-6, duration to 2 ms) and ms per file:")
    print(
        f"  {'file':<24} {'codec':<5} {'size':>9} {'fps':>8} {'frames':>6} {'seconds':>7}  "
        f"{'w h fps frames dur codec':<24} {'ours':>6} {'ffprobe':>7} {'exact':>6} {'count':>6}"
    )
    wrong_total = 0
    for path, info, theirs, wrong in rows:
        marks = " ".join("✗" if key in wrong else "✓" for key in VALUES)
        ms = [1000 * times[way][path] for way in ("ours", "ffprobe", "ours_exact", "ffprobe_count")]
        print(
            f"  {path.name:<24} {info.codec or '?':<5} {f'{info.width}x{info.height}':>9} "
            f"{info.fps:>8.4f} {info.frames:>6} {info.duration:>7.3f}  {marks:<24} "
            f"{ms[0]:>6.1f} {ms[1]:>7.1f} {ms[2]:>6.1f} {ms[3]:>6.1f}"
        )
        for key in wrong:
            print(f"      {key}: ours {getattr(info, key)!r}, ffprobe {theirs[key]!r}")
        wrong_total += len(wrong)
    checked = len(rows) * len(VALUES)
    print(f"  {checked - wrong_total} of {checked} values agree")
    return wrong_total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    paths = generate()
    times = measure(paths, args.repeats)
    print_timings(times, args.repeats)
    wrong = print_agreement(compare(paths), times)
    print(f"(the whole benchmark took {time.perf_counter() - started:.1f} s)")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
