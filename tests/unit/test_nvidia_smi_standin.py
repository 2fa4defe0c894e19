"""The lab's nvidia-smi stand-in against output recorded from real GPU hosts.

Each fixture in tests/fixtures/nvidia-smi/ holds a recorded command, its exit code and its
output (with its source in a comment line). The stand-in runs the same command with the
recorded GPU's name and memory and must print the same header and the same value shapes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "cosmos_driver" / "lab" / "simulator" / "nvidia-smi"
FIXTURES = ROOT / "tests" / "fixtures" / "nvidia-smi"
UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BUS_ID = re.compile(r"^[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-9]$")
LIST_LINE = re.compile(r"^GPU (\d+): (.+) \(UUID: (GPU-[0-9a-f-]+)\)$")


@dataclass(frozen=True)
class Recording:
    args: list[str]
    exit: int
    output: str

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


def recording(name: str) -> Recording:
    meta, body = {}, []
    for line in (FIXTURES / name).read_text().splitlines(keepends=True):
        if line.startswith("# ") and not body:
            key, _, value = line[2:].partition(": ")
            meta[key] = value.strip()
        else:
            body.append(line)
    assert meta["command"].startswith("nvidia-smi"), name
    return Recording(shlex.split(meta["command"])[1:], int(meta["exit"]), "".join(body))


def standin(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COSMOS_SIM_", "NVIDIA_"))}
    return subprocess.run(
        [sys.executable, str(STANDIN), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def columns(line: str) -> list[str]:
    return line.split(", ")


def test_every_fixture_names_its_source():
    for path in sorted(FIXTURES.glob("*.txt")):
        assert path.read_text().startswith("# source: "), path.name


def test_list_gpus_has_the_recorded_shape():
    recorded = recording("list-gpus-h100x8.txt")
    done = standin(*recorded.args, COSMOS_SIM_GPUS="8")
    assert done.returncode == recorded.exit
    ours = [LIST_LINE.match(line) for line in done.stdout.splitlines()]
    theirs = [LIST_LINE.match(line) for line in recorded.lines]
    assert all(ours) and all(theirs) and len(ours) == len(theirs) == 8
    assert [m.group(1, 2) for m in ours] == [m.group(1, 2) for m in theirs]
    assert all(UUID.match(m.group(3)) for m in ours + theirs)
    assert len({m.group(3) for m in ours}) == 8


@pytest.mark.parametrize(
    ("name", "gpus"),
    [("query-index-name-memory-h100.txt", "1"), ("query-name-memory-h100x8.txt", "8")],
)
def test_memory_query_matches_the_recording_exactly(name, gpus):
    recorded = recording(name)
    done = standin(*recorded.args, COSMOS_SIM_GPUS=gpus)
    assert (done.returncode, done.stdout) == (recorded.exit, recorded.output)


def test_identity_query_matches_the_recording():
    recorded = recording("query-identity-a100.txt")
    done = standin(
        *recorded.args,
        COSMOS_SIM_GPU_NAME="NVIDIA A100-SXM4-40GB",
        COSMOS_SIM_GPU_MEMORY_MIB="40960",
        COSMOS_SIM_DRIVER_VERSION="550.90.07",
    )
    header, row = done.stdout.splitlines()
    assert header == recorded.lines[0]
    ours, theirs = columns(row), columns(recorded.lines[1])
    assert [ours[i] for i in (0, 1, 4, 5)] == [theirs[i] for i in (0, 1, 4, 5)]
    assert UUID.match(ours[2]) and UUID.match(theirs[2])
    assert BUS_ID.match(ours[3]) and BUS_ID.match(theirs[3])


def test_usage_query_has_the_recorded_units():
    recorded = recording("query-usage-v100x2.txt")
    done = standin(
        *recorded.args,
        COSMOS_SIM_GPUS="2",
        COSMOS_SIM_GPU_NAME="Tesla V100-SXM2-32GB",
        COSMOS_SIM_GPU_MEMORY_MIB="32768",
    )
    lines = done.stdout.splitlines()
    assert lines[0] == recorded.lines[0]
    shapes = [r"\d+", r".+", r"\d+ MiB", r"\d+ MiB", r"\d+ %", r"\d+"]
    for ours, theirs in zip(lines[1:], recorded.lines[1:], strict=True):
        for shape, a, b in zip(shapes, columns(ours), columns(theirs), strict=True):
            assert re.fullmatch(shape, a) and re.fullmatch(shape, b), (a, b)
        assert columns(ours)[:3] == columns(theirs)[:3]


def test_nounits_keeps_the_header_units_and_drops_the_value_units():
    recorded = recording("query-nounits-header-rtx2080ti.txt")
    recorded_header = columns(recorded.lines[0])
    done = standin("--query-gpu=gpu_name,utilization.gpu,temperature.gpu", "--format=csv,nounits")
    header, row = done.stdout.splitlines()
    assert columns(header) == [recorded_header[0], recorded_header[1], recorded_header[3]]
    assert columns(row) == ["NVIDIA H100 80GB HBM3", "0", "30"]
    values = columns(recorded.lines[1])[1:4]
    assert len(values) == 3
    assert all(re.fullmatch(r"[\d.]+", v) for v in values)


def test_alias_fields_print_their_canonical_names():
    recorded = recording("query-alias-fields-h100.txt")
    done = standin("--query-gpu=gpu_name,gpu_bus_id", "--format=csv")
    header, row = done.stdout.splitlines()
    assert columns(header) == columns(recorded.lines[0])[:2]
    assert columns(row)[0] == columns(recorded.lines[1])[0]
    assert BUS_ID.match(columns(row)[1]) and BUS_ID.match(columns(recorded.lines[1])[1])


def test_noheader_prints_values_only():
    recorded = recording("query-noheader-h100.txt")
    done = standin(*recorded.args)
    ours, theirs = columns(done.stdout.strip()), columns(recorded.output.strip())
    assert ours[:2] == theirs[:2] == ["0", "NVIDIA H100 80GB HBM3"]
    assert UUID.match(ours[2]) and UUID.match(theirs[2])


@pytest.mark.parametrize("name", ["invalid-field.txt", "unrecognized-option.txt"])
def test_errors_are_the_real_ones(name):
    recorded = recording(name)
    done = standin(*recorded.args)
    assert (done.returncode, done.stdout) == (recorded.exit, recorded.output)


def test_gpu_count_comes_from_the_environment():
    assert len(standin("-L", COSMOS_SIM_GPUS="3").stdout.splitlines()) == 3
    none = standin("-L", COSMOS_SIM_GPUS="0")
    assert (none.returncode, none.stdout) == (6, "No devices were found\n")


def test_nvidia_visible_devices_selects_and_renumbers_as_in_a_container():
    every = standin("-L", COSMOS_SIM_GPUS="4").stdout.splitlines()
    done = standin("-L", COSMOS_SIM_GPUS="4", NVIDIA_VISIBLE_DEVICES="1,3")
    seen = [LIST_LINE.match(line).group(1, 3) for line in done.stdout.splitlines()]
    assert seen == [
        ("0", LIST_LINE.match(every[1]).group(3)),
        ("1", LIST_LINE.match(every[3]).group(3)),
    ]
    assert standin("-L", NVIDIA_VISIBLE_DEVICES="none").returncode == 6


def test_cuda_visible_devices_is_ignored_as_by_the_real_tool():
    done = standin("-L", COSMOS_SIM_GPUS="2", CUDA_VISIBLE_DEVICES="1")
    assert len(done.stdout.splitlines()) == 2
