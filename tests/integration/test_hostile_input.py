"""Hostile or careless input through the installed `cosmos` command: every case is one named
error line and exit code 2 (1 for a state directory or inventory that cannot serve) before
anything starts, or it works. Never a traceback, never a hang."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import cosmos, infer_json

BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["name: bomb", "jobs: *a9"]
)


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def refused(result, *words: str, code: int = 2) -> str:
    """The single error line of a refused command, checked to hold every word."""
    assert result.code == code, result.stderr
    (line,) = error_lines(result)
    for word in words:
        assert word in line, line
    return line


@pytest.fixture
def inventory(tmp_path) -> Path:
    """An inventory that exists and is valid; these commands stop before reaching a host."""
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    nowhere: {ansible_host: 192.0.2.1}\n")
    return path


def write(tmp_path, text: str | bytes, name: str = "batch.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &x [*x]\nname: b\njobs: [*x]\n", ["refers to itself"]),
        ("name: b\njobs: []\n? [a, b]\n: 1\n", [":3:", "plain text"]),
        (BOMB, ["expands too much"]),
        ("name: b\njobs: !!python/object:os.system {}\n", [":2:"]),
        ("name: a\nname: b\njobs: []\n", [":2:", "duplicate key"]),
        ("name: b\n---\nname: c\n", ["more than one YAML document"]),
        ("[" * 10_000 + "]" * 10_000, ["nest more than 64 levels"]),
    ],
    ids=["alias-cycle", "list-key", "alias-bomb", "python-tag", "duplicate", "two-docs", "deep"],
)
def test_hostile_yaml_is_one_error_line_naming_the_file(tmp_path, inventory, text, words):
    batch = write(tmp_path, text)
    result = infer_json(batch, tmp_path / "state", inventory)
    refused(result, f"error: {batch}", *words)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("name: café\n".encode("latin-1"), [":1:", "UTF-8"]),
        (bytes(range(256)) * 8, ["looks binary"]),
    ],
    ids=["latin-1", "binary"],
)
def test_files_that_are_not_utf8_text_are_named(tmp_path, inventory, data, words):
    batch = write(tmp_path, data)
    refused(infer_json(batch, tmp_path / "state", inventory), f"error: {batch}", *words)


def test_a_fifo_as_batch_or_inventory_is_refused_without_hanging(tmp_path, inventory):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    refused(infer_json(fifo, tmp_path / "state", inventory), f"error: {fifo}", "regular file")
    batch = write_batch(tmp_path, "b", [job("j")])
    result = infer_json(batch, tmp_path / "state", fifo)
    refused(result, f"inventory {fifo} is not a file or folder", code=1)


def test_a_batch_larger_than_the_limit_is_refused_before_it_is_parsed(tmp_path, inventory):
    batch = tmp_path / "huge.yaml"
    with batch.open("w") as out:
        out.write("name: huge\njobs:\n")
        line = "  - {name: j, prompt: p, inputs: {color: c.mp4}, controls: {edge: 0.5}}\n"
        out.write(line * (17 * 1024 * 1024 // len(line)))
    refused(infer_json(batch, tmp_path / "state", inventory), "16 MiB", "docs/batch-file.md")


def test_a_sweep_past_max_runs_is_refused_with_its_count_and_the_fix(tmp_path, inventory):
    sweep = job("s", seed=list(range(100)), guidance=list(range(11)))
    batch = write_batch(tmp_path, "wide", [sweep, job("t")])
    result = infer_json(batch, tmp_path / "state", inventory)
    refused(result, "expands to 1,101 runs", "more than 1,000", "--yes", "max_runs: 1101")


def test_a_sweep_past_the_hard_cap_is_refused_even_with_yes(tmp_path, inventory):
    sweep = job("s", seed=list(range(1000)), guidance=list(range(11)), fps=list(range(1, 11)))
    batch = write_batch(tmp_path, "huge", [sweep])
    result = cosmos(
        "infer", "--batch", str(batch), "--yes", "--inventory", str(inventory),
        "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    refused(result, "110,000 runs", "split it")


@pytest.mark.parametrize("kind", ["file", "proc"])
def test_a_state_dir_that_cannot_be_written_is_named_before_validation(tmp_path, inventory, kind):
    state = tmp_path / "state-file" if kind == "file" else Path("/proc/cosmos-state")
    if kind == "file":
        state.write_text("not a folder")
    broken = write(tmp_path, "name: [unclosed\n")  # never reached: the store comes first
    result = infer_json(broken, state, inventory)
    refused(result, f"state directory {state}", "--state-dir", code=1)


def test_an_inventory_without_hosts_is_named_with_the_fix(tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text("all:\n  children: {}\n")
    batch = write_batch(tmp_path, "b", [job("j")])
    result = infer_json(batch, tmp_path / "state", empty)
    refused(result, f"{empty}: the inventory lists no hosts", code=1)
    assert " on \n" not in result.stderr and not result.stderr.rstrip().endswith(" on")


def test_a_gpu_count_that_is_not_a_number_names_host_variable_and_fix(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-1: {cosmos_gpu_count: two}\n")
    batch = write_batch(tmp_path, "b", [job("j")])
    result = infer_json(batch, tmp_path / "state", inventory)
    refused(result, f"{inventory}: host gpu-1: cosmos_gpu_count: 'two' is not a whole number")


def test_an_input_folder_is_said_to_be_a_folder(tmp_path, inventory):
    batch = write_batch(tmp_path, "b", [job("j", inputs={"color": "inputs"})])
    refused(infer_json(batch, tmp_path / "state", inventory), "is a folder; name a video file")


def test_a_dot_dot_job_name_states_the_rule(tmp_path, inventory):
    batch = write_batch(tmp_path, "b", [job("..")])
    refused(
        infer_json(batch, tmp_path / "state", inventory),
        "must start with a letter or digit, then letters, digits, '.', '_' or '-'",
    )


def test_merge_keys_and_an_empty_negative_prompt_work_on_the_lab(lab, tmp_path):
    write_batch(tmp_path, "unused", [job("x")])  # copies the example inputs beside the batch
    base = job("first", negative_prompt="")
    text = yaml.safe_dump({"name": "merged", "jobs": [base]}, sort_keys=False)
    text = text.replace("- name: first", "- &first\n  name: first")
    text += "- <<: *first\n  name: second\n  seed: 7\n"
    batch = write(tmp_path, text, "merged.yaml")

    result = infer_json(batch, tmp_path / "state", lab.inventory)

    assert result.code == 0, result.stderr
    runs = {r["job_name"]: r for r in result.json()["runs"]}
    assert set(runs) == {"first", "second"}
    assert {r["state"] for r in runs.values()} == {"succeeded"}
    run_dir = tmp_path / "state" / "runs" / runs["second"]["run_id"]
    spec = json.loads((run_dir / "spec.json").read_text())
    assert (spec["negative_prompt"], spec["seed"], spec["prompt"]) == ("", 7, base["prompt"])
    batch_line = next(line for line in result.stderr.splitlines() if "expand to" in line)
    assert batch_line.endswith("2 job entries expand to 2 run(s)")
