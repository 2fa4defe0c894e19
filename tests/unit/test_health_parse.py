"""cosmos_health's nvidia-smi CSV filter, on recorded output and on the lab's stand-in."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from cosmos_driver.content import COLLECTION

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = COLLECTION / "plugins" / "filter" / "nvidia_smi.py"
STANDIN = ROOT / "cosmos_driver" / "lab" / "simulator" / "nvidia-smi"
spec = importlib.util.spec_from_file_location("cosmos_health_nvidia_smi", PLUGIN)
nvidia_smi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nvidia_smi)
parse = nvidia_smi.nvidia_smi_csv

HEALTH_FIELDS = ["index", "name", "memory.total", "driver_version", "uuid"]


def recorded_body(name: str) -> str:
    text = (ROOT / "tests" / "fixtures" / "nvidia-smi" / name).read_text()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("# "))


def test_recorded_noheader_output():
    gpus = parse(recorded_body("query-noheader-h100.txt"), ["index", "name", "uuid"])
    assert gpus == [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-81d79b08-40a0-40ae-3fc5-82b8ff8b8138",
        }
    ]


def test_the_health_query_on_the_lab_standin():
    argv = [sys.executable, str(STANDIN), "--query-gpu=" + ",".join(HEALTH_FIELDS)]
    out = subprocess.run(
        [*argv, "--format=csv,noheader,nounits"],
        env={"COSMOS_SIM_GPUS": "2"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    gpus = parse(out, HEALTH_FIELDS)
    assert [g["index"] for g in gpus] == [0, 1]
    assert {g["memory_total"] for g in gpus} == {81559}
    assert {g["driver_version"] for g in gpus} == {"550.54.15"}
    assert gpus[0]["uuid"] != gpus[1]["uuid"]


def test_blank_lines_are_not_gpus():
    assert parse("\n0, NVIDIA A40, 46068\n\n", ["index", "name", "memory.total"]) == [
        {"index": 0, "name": "NVIDIA A40", "memory_total": 46068}
    ]


def test_a_line_of_the_wrong_width_is_named():
    with pytest.raises(AnsibleFilterError, match="has 2 values for 3 fields"):
        parse("0, NVIDIA A40\n", ["index", "name", "memory.total"])


def test_a_line_with_units_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"memory\.total is '46068 MiB'"):
        parse("0, NVIDIA A40, 46068 MiB\n", ["index", "name", "memory.total"])


def test_the_filter_is_registered_under_its_role_prefixed_name():
    assert nvidia_smi.FilterModule().filters() == {"cosmos_nvidia_smi_csv": parse}
