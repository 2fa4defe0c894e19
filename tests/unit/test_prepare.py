"""prepare: PNG sequences become one mp4 per modality whose metadata (read by ffprobe too)
matches the sequences; every problem of a folder is named before anything is written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosmos_driver.batch import load_batch
from cosmos_driver.errors import ValidationError
from cosmos_driver.multimodal import check_batch_inputs
from cosmos_driver.prepare import check_sequences, png_size, prepare_sequences
from tests.fakes.videos import ffprobe, shade, write_sequence


def frame_shades(video: Path) -> list[int]:
    """The mean grey level of each decoded frame, rounded."""
    capture = cv2.VideoCapture(str(video))
    shades = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        shades.append(round(float(frame.mean())))
    capture.release()
    return shades


def problems_of(folder: Path, **options) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        prepare_sequences(folder, **options)
    return caught.value.problems


def test_sequences_become_videos_matching_them(tmp_path):
    write_sequence(tmp_path, "color", range(1, 13))
    write_sequence(tmp_path, "depth", range(1, 13))
    videos = prepare_sequences(tmp_path, fps=30)
    out = tmp_path / "videos"
    assert [(v.modality, v.path) for v in videos] == [
        ("color", out / "color.mp4"),
        ("depth", out / "depth.mp4"),
    ]
    for video in videos:
        truth = ffprobe(video.path)
        assert (truth["width"], truth["height"], truth["frames"]) == (64, 48, 12)
        assert truth["fps"] == pytest.approx(30)
        assert (video.frames, video.width, video.height, video.fps) == (12, 64, 48, 30)
        assert (video.first_frame, video.last_frame) == (1, 12)
    assert sorted(p.name for p in out.iterdir()) == ["color.mp4", "depth.mp4"]


def test_frame_numbers_of_any_width_are_ordered_by_number(tmp_path):
    write_sequence(tmp_path, "color", range(0, 12), digits=1)  # color.0.png … color.11.png
    [video] = prepare_sequences(tmp_path, out=tmp_path / "out", fps=24)
    shades = frame_shades(video.path)
    # mp4v and its YUV conversion shift grey levels by a few steps; the frames are 20 apart.
    assert [abs(s - shade(n)) <= 8 for n, s in enumerate(shades)] == [True] * 12


def test_16_bit_grey_depth_frames_are_accepted(tmp_path):
    write_sequence(tmp_path, "color", range(1, 5))
    for number in range(1, 5):
        depth = np.full((48, 64), 1000 * number, dtype=np.uint16)
        assert cv2.imwrite(str(tmp_path / f"depth.{number:04d}.png"), depth)
    videos = prepare_sequences(tmp_path)
    assert [v.frames for v in videos] == [4, 4]


def test_output_folder_is_usable_as_a_jobs_inputs(tmp_path):
    write_sequence(tmp_path / "shot", "color", range(1, 9), size=(960, 704))
    write_sequence(tmp_path / "shot", "edge", range(1, 9), size=(960, 704))
    prepare_sequences(tmp_path / "shot", fps=24)
    batch_file = tmp_path / "batch.yaml"
    batch_file.write_text(
        textwrap.dedent(
            """
            name: from-pngs
            jobs:
              - name: shot
                prompt: a street
                inputs: {color: shot/videos/color.mp4, edge: shot/videos/edge.mp4}
                controls: {edge: 0.5}
            """
        ),
        encoding="utf-8",
    )
    assert check_batch_inputs(load_batch(batch_file)) == ([], [])


def test_running_again_ignores_its_own_output_folder(tmp_path):
    write_sequence(tmp_path, "color", range(1, 4))
    prepare_sequences(tmp_path)
    assert [v.frames for v in prepare_sequences(tmp_path)] == [3]


def test_gap_is_named_and_nothing_is_written(tmp_path):
    write_sequence(tmp_path, "color", [1, 2, 3, 4, 6, 7, 10])
    problems = problems_of(tmp_path)
    assert problems == [
        f"{tmp_path}: color: gap: color.0004.png is followed by color.0006.png (frame 5 missing)",
        f"{tmp_path}: color: gap: color.0007.png is followed by color.0010.png "
        "(frames 8–9 missing)",
    ]
    assert not (tmp_path / "videos").exists()


def test_frame_of_another_size_is_named(tmp_path):
    write_sequence(tmp_path, "color", range(1, 6))
    write_sequence(tmp_path, "color", [6], size=(64, 40))
    write_sequence(tmp_path, "color", range(7, 9))
    assert problems_of(tmp_path) == [
        f"{tmp_path / 'color.0006.png'}: 64×40, but the other color frames are 64×48"
    ]


def test_sizes_and_frames_across_modalities_are_checked(tmp_path):
    write_sequence(tmp_path, "color", range(1, 6))
    write_sequence(tmp_path, "depth", range(1, 6), size=(32, 24))
    write_sequence(tmp_path, "seg", range(0, 5))
    problems = problems_of(tmp_path)
    assert f"{tmp_path}: depth frames are 32×24 but color frames are 64×48" in problems
    assert (
        f"{tmp_path}: seg has 5 frames (0–4) but color has 5 frames (1–5); each control needs "
        "a frame for every color frame"
    ) in problems
    assert len(problems) == 2


def test_every_problem_of_a_folder_at_once(tmp_path):
    write_sequence(tmp_path, "depth", [1, 2, 4])
    (tmp_path / "notes.txt").write_text("hi")
    write_sequence(tmp_path, "segmentation", [1])
    (tmp_path / "depth.0001.png").with_name("depth.01.png").write_bytes(
        (tmp_path / "depth.0001.png").read_bytes()
    )
    problems = problems_of(tmp_path, fps=0)
    assert len(problems) == 6, problems
    text = "\n".join(problems)
    assert "--fps must be a number above 0" in text
    assert f"{tmp_path / 'notes.txt'}: unexpected file" in text
    assert f"{tmp_path / 'segmentation.0001.png'}: unexpected file; did you mean 'seg'?" in text
    assert "frame 1 of depth again (also depth.0001.png)" in text
    assert "no color sequence" in text
    assert "depth.0002.png is followed by depth.0004.png" in text


def test_odd_size_is_refused_because_mp4v_would_crop_it(tmp_path):
    write_sequence(tmp_path, "color", range(1, 3), size=(63, 48))
    [problem] = problems_of(tmp_path)
    assert "63×48" in problem and "even width and height" in problem


def test_not_a_png_is_named(tmp_path):
    write_sequence(tmp_path, "color", range(1, 3))
    (tmp_path / "color.0003.png").write_bytes(b"\xff\xd8\xff\xe0 a jpeg, really")
    assert problems_of(tmp_path) == [
        f"{tmp_path / 'color.0003.png'}: not a PNG file (no PNG signature and header)"
    ]


def test_empty_folder_and_missing_folder(tmp_path):
    assert "no PNG frames" in problems_of(tmp_path)[0]
    with pytest.raises(ValidationError, match="no such folder"):
        prepare_sequences(tmp_path / "nowhere")


def test_damaged_png_body_fails_the_write_and_leaves_nothing_behind(tmp_path):
    write_sequence(tmp_path, "color", range(1, 4))
    damaged = tmp_path / "color.0002.png"
    damaged.write_bytes(damaged.read_bytes()[:40])  # header intact, image data gone
    assert png_size(damaged) == (64, 48)
    assert set(check_sequences(tmp_path)) == {"color"}
    with pytest.raises(ValidationError, match="does not decode") as caught:
        prepare_sequences(tmp_path)
    assert str(damaged) in str(caught.value)
    assert list((tmp_path / "videos").iterdir()) == []
