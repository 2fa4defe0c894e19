"""Multimodal checks on real videos: agreement across modalities, Cosmos's sizes and limits,
and a whole batch checked at once, each file probed once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from cosmos_driver import multimodal
from cosmos_driver.batch import load_batch
from cosmos_driver.multimodal import (
    FPS_TOLERANCE,
    TRANSFER1,
    check_batch_inputs,
    check_job_inputs,
    cosmos_size,
)
from tests.fakes.videos import make_video

MPEG4 = ("-c:v", "mpeg4")


def write_video(path: Path, size: str, fps: float, frames: int) -> Path:
    """A real mp4 (OpenCV's mp4v writer, in-process: quicker than an ffmpeg per clip)."""
    width, height = (int(n) for n in size.split("x"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for index in range(frames):
        writer.write(np.full((height, width, 3), index * 20 % 256, dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real videos: a matching set, and one of each kind of mismatch."""
    folder = tmp_path_factory.mktemp("clips")
    specs = {
        "color": ("960x704", 24, 8),
        "depth": ("960x704", 24, 8),
        "short": ("960x704", 24, 6),
        "small": ("480x352", 24, 8),
        "fast": ("960x704", 30, 8),
        "hd": ("640x360", 24, 8),
        "hd_depth": ("640x360", 24, 8),
        "vga": ("160x120", 30, 8),
    }
    made = {name: write_video(folder / f"{name}.mp4", *spec) for name, spec in specs.items()}
    # The same rate written two ways, by ffmpeg: 30000/1001 and 2997/100.
    for name, rate in (("ntsc_a", "30000/1001"), ("ntsc_b", "29.97")):
        made[name] = make_video(folder / f"{name}.mp4", "64x48", rate, 8, *MPEG4)
    return made


def test_matching_inputs_at_a_cosmos_size_give_nothing_to_say(clips):
    report = check_job_inputs("job a", {"color": clips["color"], "depth": clips["depth"]})
    assert report.ok and report.problems == [] and report.warnings == []
    assert set(report.videos) == {"color", "depth"}


def test_each_mismatch_is_a_problem_naming_both_files(clips):
    inputs = {
        "color": clips["color"],
        "depth": clips["short"],
        "edge": clips["small"],
        "seg": clips["fast"],
    }
    problems = check_job_inputs("batch.yaml: job a", inputs).problems
    assert len(problems) == 3, problems
    frames, size, fps = problems
    assert "inputs.depth" in frames and "6 frames" in frames and "has 8" in frames
    assert "inputs.edge" in size and "480×352" in size and "960×704" in size
    assert "inputs.seg" in fps and "30 fps" in fps and "24 fps" in fps
    for line in problems:
        assert line.startswith("batch.yaml: job a: ")
        assert str(clips["color"]) in line


def test_fps_written_two_ways_agrees_within_the_tolerance(clips):
    report = check_job_inputs("j", {"color": clips["ntsc_a"], "depth": clips["ntsc_b"]}, 30)
    assert report.ok, report.problems
    difference = abs(report.videos["color"].fps - report.videos["depth"].fps)
    assert 0 < difference <= FPS_TOLERANCE


def test_resize_to_cosmos_size_is_a_warning_not_a_problem(clips):
    report = check_job_inputs("j", {"color": clips["hd"], "depth": clips["hd_depth"]})
    assert report.ok
    assert len(report.warnings) == 1
    assert "640×360" in report.warnings[0] and "to 1280×704" in report.warnings[0]
    assert "stretched" in report.warnings[0] and "not cropped" in report.warnings[0]


def test_output_fps_differing_from_the_color_video_is_a_warning(clips):
    default = check_job_inputs("j", {"color": clips["vga"]})
    assert any("written at 24 fps" in w and "0.80× speed" in w for w in default.warnings)
    matched = check_job_inputs("j", {"color": clips["vga"]}, output_fps=30)
    assert len(matched.warnings) == 1  # the resize, and no frame rate warning
    assert not any("written at" in w for w in matched.warnings)


def test_control_without_color_is_a_problem(clips):
    problems = check_job_inputs("j", {"depth": clips["depth"]}).problems
    assert problems == [
        "j: inputs: control video(s) (depth) without a color video; add inputs.color, "
        "the scene the controls were made from"
    ]


def test_unreadable_input_names_job_modality_and_file(clips, tmp_path):
    broken = tmp_path / "depth.mp4"
    broken.write_bytes(clips["depth"].read_bytes()[:2000])
    problems = check_job_inputs("b.yaml: job x", {"color": clips["color"], "depth": broken})
    assert len(problems.problems) == 1
    assert problems.problems[0].startswith(f"b.yaml: job x: inputs.depth: {broken}: ")


def test_more_frames_than_transfer1_reads_is_a_problem(tmp_path):
    long = write_video(tmp_path / "long.mp4", "32x32", 100, 5001)
    problems = check_job_inputs("j", {"color": long}, output_fps=100).problems
    assert len(problems) == 1
    assert "5001 frames" in problems[0] and "at most 5000" in problems[0]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (1280, 704)),
        ((1280, 720), (1280, 704)),
        ((1080, 1920), (704, 1280)),
        ((640, 480), (960, 704)),
        ((1000, 1000), (960, 960)),
        ((720, 960), (704, 960)),
        ((2560, 1080), (1280, 704)),
    ],
)
def test_cosmos_size_is_the_nearest_aspect_ratio(size, expected):
    assert cosmos_size(*size) == expected
    assert expected in [entry[1] for entry in TRANSFER1.sizes]


def _batch(folder: Path, clips: dict[str, Path], truncated: Path) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: sweep
            defaults:
              prompt: a street
              controls: {{depth: 0.5}}
            jobs:
              - name: good
                inputs: {{color: {clips["color"]}, depth: {clips["depth"]}}}
              - name: short-depth
                inputs: {{color: {clips["color"]}, depth: {clips["short"]}}}
              - name: broken-depth
                inputs: {{color: {clips["color"]}, depth: {truncated}}}
              - name: broken-again
                fps: 24
                inputs: {{color: {clips["color"]}, depth: {truncated}}}
            """
        ),
        encoding="utf-8",
    )
    return path


def test_batch_reports_every_problem_of_every_job_at_once(clips, tmp_path, monkeypatch):
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clips["depth"].read_bytes()[:3000])
    batch = load_batch(_batch(tmp_path, clips, truncated))
    calls: list[Path] = []
    real_probe = multimodal.probe

    def counting_probe(path: Path):
        calls.append(path)
        return real_probe(path)

    monkeypatch.setattr(multimodal, "probe", counting_probe)
    problems, warnings = check_batch_inputs(batch)
    assert warnings == []
    assert len(problems) == 3, problems
    prefix = f"{batch.source}: job "
    assert problems[0].startswith(prefix + "short-depth: inputs.depth")
    assert problems[1].startswith(prefix + f"broken-depth: inputs.depth: {truncated}: ")
    assert problems[2].startswith(prefix + f"broken-again: inputs.depth: {truncated}: ")
    files = {clips["color"], clips["depth"], clips["short"], truncated}
    assert sorted(p.resolve() for p in calls) == sorted(p.resolve() for p in files)


def test_a_warning_shared_by_many_jobs_is_said_once_with_a_count(clips, tmp_path):
    sweep = {
        "name": "fast",
        "prompt": "p",
        "inputs": {"color": str(clips["color"])},
        "controls": {"edge": 0.5},
        "fps": 60,
        "seed": list(range(300)),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "jobs": [sweep]}))
    batch = load_batch(path)
    problems, warnings = check_batch_inputs(batch)
    assert problems == []
    (warning,) = warnings
    assert warning.startswith(f"{batch.source}: 300 jobs (job fast.seed-0 and others): ")
    assert "fps" in warning
