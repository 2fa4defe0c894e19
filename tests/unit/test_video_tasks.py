"""`cosmos inspect` and `cosmos prepare` as a user runs them: the installed command, as a
subprocess, on real files (no lab needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.videos import ffprobe, make_video, write_sequence

COSMOS = str(Path(sys.executable).parent / "cosmos")


def cosmos(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed command; a wide COLUMNS keeps rich from folding paths in tables."""
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(
        [COSMOS, *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job's input folder as ffmpeg would make it: color and depth, 1280×704, 24 fps."""
    folder = tmp_path_factory.mktemp("inputs")
    for name in ("color", "depth"):
        make_video(folder / f"{name}.mp4", "1280x704", "24", 10, "-c:v", "mpeg4")
    return folder


def test_inspect_json_reports_what_ffprobe_reads(inputs):
    done = cosmos("inspect", "--path", inputs / "color.mp4", "--json")
    assert done.returncode == 0, done.stderr
    [video] = json.loads(done.stdout)["videos"]
    truth = ffprobe(inputs / "color.mp4")
    assert (video["width"], video["height"], video["frames"]) == (1280, 704, truth["frames"])
    assert video["fps"] == pytest.approx(truth["fps"])
    assert video["duration"] == pytest.approx(truth["duration"], abs=0.002)
    assert video["codec"] == truth["codec"] == "FMP4"


def test_inspect_several_paths_and_a_folder_as_a_table(inputs, tmp_path):
    other = make_video(tmp_path / "clip.mp4", "640x480", "30", 5, "-c:v", "mjpeg")
    done = cosmos("inspect", "--path", other, "--also", inputs, "--exact")
    assert done.returncode == 0, done.stderr
    for text in ("clip.mp4", "color.mp4", "depth.mp4", "640×480", "960×704", "1280×704"):
        assert text in done.stdout
    assert f"{inputs}: the inputs agree (color, depth)" in done.stdout


def test_inspect_names_a_mismatch_in_an_input_folder(tmp_path):
    make_video(tmp_path / "color.mp4", "1280x704", "24", 10, "-c:v", "mpeg4")
    make_video(tmp_path / "depth.mp4", "1280x704", "24", 7, "-c:v", "mpeg4")
    done = cosmos("inspect", "--path", tmp_path, "--json")
    assert done.returncode == 2
    [folder] = json.loads(done.stdout)["folders"]
    assert len(folder["problems"]) == 1
    assert "inputs.depth" in folder["problems"][0] and "7 frames" in folder["problems"][0]
    assert "error: " in done.stderr and str(tmp_path / "depth.mp4") in done.stderr


def test_inspect_names_a_truncated_file_and_fails(inputs, tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((inputs / "color.mp4").read_bytes()[:5000])
    done = cosmos("inspect", "--path", cut, "--also", inputs / "depth.mp4")
    assert done.returncode == 2
    assert "unreadable" in done.stdout and "depth.mp4" in done.stdout
    assert f"error: {cut}: truncated MP4/MOV" in done.stderr


def test_prepare_writes_videos_ffprobe_agrees_with(tmp_path):
    write_sequence(tmp_path / "shot", "color", range(1, 11), size=(320, 240))
    write_sequence(tmp_path / "shot", "depth", range(1, 11), size=(320, 240))
    done = cosmos("prepare", "--dir", tmp_path / "shot", "--fps", "30", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [v["modality"] for v in report["videos"]] == ["color", "depth"]
    for name in ("color", "depth"):
        truth = ffprobe(tmp_path / "shot" / "videos" / f"{name}.mp4")
        assert (truth["width"], truth["height"], truth["frames"]) == (320, 240, 10)
        assert truth["fps"] == pytest.approx(30)
    assert report["problems"] == []
    assert any("resizes it to 960×704" in w for w in report["warnings"])


def test_prepare_out_folder_and_default_fps(tmp_path):
    write_sequence(tmp_path / "shot", "color", range(0, 6))
    done = cosmos("prepare", "--dir", tmp_path / "shot", "--out", tmp_path / "ready")
    assert done.returncode == 0, done.stderr
    assert "color" in done.stdout and str(tmp_path / "ready" / "color.mp4") in done.stdout
    assert ffprobe(tmp_path / "ready" / "color.mp4")["fps"] == pytest.approx(24)


def test_prepare_refuses_a_gap_naming_it_and_writes_nothing(tmp_path):
    write_sequence(tmp_path, "color", [1, 2, 3, 5])
    done = cosmos("prepare", "--dir", tmp_path)
    assert done.returncode == 2
    assert "color.0003.png is followed by color.0005.png (frame 4 missing)" in done.stderr
    assert not (tmp_path / "videos").exists()
