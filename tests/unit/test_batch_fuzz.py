"""Property tests: whatever a batch file holds, load_batch returns a Batch or raises a
ValidationError of `file:…` lines; no other exception escapes. Inputs are small, so the whole
module runs in seconds."""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmos_driver.batch import JOB_FIELDS, TOP_FIELDS, Batch, load_batch
from cosmos_driver.errors import ValidationError

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)

VALID = textwrap.dedent(
    """\
    name: fuzzed
    defaults: &d
      prompt: a robot arm stacks cups
      inputs:
        color: videos/color.mp4
      controls: {edge: 0.5}
      num_steps: 10
    jobs:
      - name: one
        seed: [1, 2]
      - <<: *d
        name: two
        inputs: {color: videos/color.mp4, depth: videos/depth.mp4}
        controls: {depth: 0.25, edge: 1}
        guidance: 7.5
    """
)
# Pieces of YAML syntax that parsers trip on, for inserting into a valid batch.
TOKENS = [
    "&a ", "*a", "*d", "<<: *d\n", "<<: [*d, *d]\n", "!!python/object:os.system ", "!foo ",
    "!!binary ", "!!set ", "!!omap ", "? ", ": ", "- ", "---\n", "...\n", "\t", "\x00", "\ufeff",
    "\r", "\x85", "\u2028", "[", "]", "{", "}", "'", '"', "|\n", ">-\n", "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n", "#", ",", "\\", "\xe9", "2001-13-14", ".nan", "1:59:59", "~", "=",
]  # fmt: skip


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """A folder holding the input videos VALID names; each example rewrites fuzz.yaml in it."""
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        (root / "videos").mkdir()
        for video in ("color.mp4", "depth.mp4"):
            (root / "videos" / video).write_bytes(b"not really a video")
        yield root


def assert_loads_or_reports(path: Path) -> None:
    """load_batch gives a Batch, or a ValidationError whose every line names `path`."""
    try:
        batch = load_batch(path)
    except ValidationError as exc:
        lines = str(exc).splitlines()
        assert lines == exc.problems, "a problem spans several lines"
        assert lines, "an empty ValidationError"
        for line in lines:
            assert line.startswith(f"{path}:"), line
        return
    assert isinstance(batch, Batch)


def write(folder: Path, content: bytes | str) -> Path:
    path = folder / "fuzz.yaml"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_the_valid_batch_is_valid(folder):
    batch = load_batch(write(folder, VALID))
    assert [job.name for job in batch.jobs] == ["one.seed-1", "one.seed-2", "two"]


# --- (a) random bytes --------------------------------------------------------------------------


@FUZZ
@given(content=st.binary(max_size=2_000))
def test_random_bytes(folder, content):
    assert_loads_or_reports(write(folder, content))


@FUZZ
@given(content=st.binary(max_size=300), at=st.integers(0, len(VALID)))
def test_random_bytes_inside_a_valid_batch(folder, content, at):
    data = VALID.encode()
    assert_loads_or_reports(write(folder, data[:at] + content + data[at:]))


# --- (b) random YAML documents -----------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["videos/color.mp4", "videos/depth.mp4", "low", "very_high", "", "x" * 300])
)
KEYS = st.sampled_from(
    [*JOB_FIELDS, *TOP_FIELDS, "color", "depth", "edge", "vis", "seg"]
) | st.text(max_size=12)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)
JOB = st.dictionaries(
    st.sampled_from(list(JOB_FIELDS)), VALUES, max_size=8
) | st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True) | SCALARS,
        "prompt": st.text(max_size=30) | SCALARS,
        "inputs": st.fixed_dictionaries({"color": st.just("videos/color.mp4") | SCALARS}),
        "controls": st.dictionaries(st.sampled_from(["edge", "depth", "vis"]), VALUES, max_size=3),
    },
    optional={key: VALUES for key in ("seed", "guidance", "num_steps", "upscale", "env", "gpus")},
)
BATCH = st.fixed_dictionaries(
    {
        "name": st.tuples(st.booleans(), SCALARS).map(lambda pick: "fuzz" if pick[0] else pick[1]),
        "jobs": st.lists(JOB, min_size=1, max_size=4) | VALUES,
    },
    optional={"defaults": JOB | VALUES, "max_runs": SCALARS},
)


def dumped(data: Any, flow: bool | None) -> str:
    return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True, sort_keys=False)


@FUZZ
@given(data=VALUES, flow=st.sampled_from([None, False, True]))
def test_random_yaml_documents(folder, data, flow):
    assert_loads_or_reports(write(folder, dumped(data, flow)))


@FUZZ
@given(data=BATCH, flow=st.sampled_from([None, False, True]))
def test_random_batch_shaped_documents(folder, data, flow):
    path = write(folder, dumped(data, flow))
    assert_loads_or_reports(path)


# --- (c) mutations of a valid batch ------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """VALID with a few random edits: pieces cut, YAML tokens or text put in, lines copied."""
    text = VALID
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["cut", "token", "text", "line"]))
        if edit == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif edit == "token":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif edit == "text":
            text = text[:at] + draw(st.text(max_size=6)) + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            index = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: index + 1] + lines[index:])
    return text


@FUZZ
@given(text=mutated())
def test_mutations_of_a_valid_batch(folder, text):
    assert_loads_or_reports(write(folder, text))
