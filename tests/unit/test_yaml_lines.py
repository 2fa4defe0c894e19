"""yaml_lines reads untrusted YAML: every bad file is one `file:line: problem` line, quickly,
and valid files keep working (merge keys included), with the line of every key and item."""

from __future__ import annotations

import datetime
import itertools
import math
import os
from pathlib import Path

import pytest
import yaml

from cosmos_driver import yaml_lines
from cosmos_driver.batch import load_batch
from cosmos_driver.errors import ValidationError
from cosmos_driver.yaml_lines import (
    LIMITS,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    MIN_EXPANSION,
    load_lined,
)

LOADERS = {"libyaml": getattr(yaml, "CSafeLoader", None), "python": yaml_lines._GuardedLoader}


@pytest.fixture(params=sorted(LOADERS))
def loader(request, monkeypatch) -> str:
    """Run the test with libyaml's loader and with the pure-Python fallback."""
    if LOADERS[request.param] is None:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(yaml_lines, "_LOADER", LOADERS[request.param])
    return request.param


def write(tmp_path: Path, content: str | bytes, name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def problem(path: Path) -> str:
    """The one-line message load_lined refuses `path` with."""
    with pytest.raises(ValidationError) as caught:
        load_lined(path)
    assert caught.value.problems == [str(caught.value)]
    assert "\n" not in str(caught.value)
    return str(caught.value)


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """`a: &a [x, …]`, then each level a list of `width` aliases of the one before."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for before, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{before}'] * width)}]")
    return "\n".join(lines) + "\n"


# --- the file itself ---------------------------------------------------------------------------


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    assert problem(path) == (
        f"{path}: is not a regular file (a pipe, socket or device); name a YAML file"
    )


def test_a_folder_is_refused(tmp_path):
    path = tmp_path / "batch.yaml"
    path.mkdir()
    assert problem(path) == f"{path}: is a folder, not a YAML file"


def test_a_missing_file_cannot_be_read(tmp_path):
    path = tmp_path / "absent.yaml"
    assert problem(path) == f"{path}: cannot read (No such file or directory)"


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as stream:
        stream.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written
    assert problem(path) == (
        f"{path}: is too large: {MAX_FILE_BYTES + 1:,} bytes, more than the 16 MiB "
        f"a YAML file may be ({LIMITS})"
    )
    assert LIMITS == "docs/batch-file.md#limits"


def test_a_file_of_exactly_the_limit_is_read(tmp_path):
    path = write(tmp_path, b"a: 1\n" + b"#" * (MAX_FILE_BYTES - 6) + b"\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert load_lined(path).data == {"a": 1}


def test_nul_bytes_look_binary(tmp_path):
    path = write(tmp_path, b"name: b\njobs: \x00\x01\x02\n")
    assert problem(path) == (f"{path}:2: looks binary: a NUL byte at column 7; YAML is UTF-8 text")


def test_an_mp4_given_as_a_batch_looks_binary(tmp_path, mp4):
    path = mp4(tmp_path / "video.mp4").rename(tmp_path / "video.yaml")
    assert "looks binary" in problem(path)


def test_control_characters_look_binary(tmp_path):
    path = write(tmp_path, "name: b\nprompt: a\x07b\n")
    assert problem(path) == (
        f"{path}:2: looks binary: character U+0007 at column 10 is not allowed in YAML"
    )


def test_a_latin1_file_names_line_and_column_and_says_save_as_utf8(tmp_path):
    path = write(tmp_path, "name: b\nprompt: café au lait\n".encode("latin-1"))
    assert problem(path) == (
        f"{path}:2: is not UTF-8 text (byte 0xe9 at column 12); save it as UTF-8"
    )


def test_the_column_of_a_bad_byte_counts_characters_not_bytes(tmp_path):
    path = write(tmp_path, "prompt: ü ".encode() + b"\xff\n")
    assert problem(path) == (
        f"{path}:1: is not UTF-8 text (byte 0xff at column 11); save it as UTF-8"
    )


def test_a_utf8_bom_is_fine(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfname: b\nitems: [1]\n")
    document = load_lined(path)
    assert document.data == {"name": "b", "items": [1]}
    assert document.lines == {"name": 1, "items": 2, "items[0]": 2}


# --- merge keys ------------------------------------------------------------------------------


def test_a_merge_key_merges_and_explicit_keys_win(tmp_path, loader):
    path = write(
        tmp_path,
        "base: &base\n  a: 1\n  b: 2\njob:\n  <<: *base\n  b: 3\n  c: 4\n",
    )
    document = load_lined(path)
    assert document.data["job"] == {"a": 1, "b": 3, "c": 4}
    assert document.lines["job.a"] == 2  # where the merged value is written
    assert document.lines["job.b"] == 6
    assert document.lines["job.c"] == 7


def test_a_merge_list_earlier_mappings_win(tmp_path, loader):
    path = write(
        tmp_path,
        "one: &one {a: 1, b: 1}\ntwo: &two {b: 2, c: 2}\njob:\n  <<: [*one, *two]\n  c: 3\n",
    )
    assert load_lined(path).data["job"] == {"a": 1, "b": 1, "c": 3}


def test_merges_nest(tmp_path, loader):
    path = write(tmp_path, "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n")
    assert load_lined(path).data["c"] == {"x": 1, "y": 2, "z": 3}


def test_merged_keys_come_first_as_pyyaml_orders_them(tmp_path, loader):
    text = "one: &one {a: 1, b: 1}\ntwo: &two {b: 2, c: 2}\njob: {x: 0, <<: [*one, *two], c: 3}\n"
    job = load_lined(write(tmp_path, text)).data["job"]
    assert job == {"a": 1, "b": 1, "c": 3, "x": 0}
    assert list(job) == ["a", "b", "c", "x"]
    assert list(job) == list(yaml.safe_load(text)["job"])


def test_merging_a_scalar_is_refused_with_its_line(tmp_path, loader):
    path = write(tmp_path, "a: 1\njob:\n  <<: 3\n")
    assert problem(path) == (
        f"{path}:3: `<<` merges a mapping or a list of mappings "
        "(`<<: *defaults`, `<<: [*a, *b]`), nothing else"
    )


def test_merging_a_list_holding_a_scalar_is_refused(tmp_path, loader):
    path = write(tmp_path, "a: &a {x: 1}\njob:\n  <<: [*a, 2]\n")
    assert problem(path).startswith(f"{path}:3: `<<` merges a mapping or a list of mappings")


def test_two_merge_keys_in_one_mapping_are_duplicates(tmp_path, loader):
    path = write(tmp_path, "job:\n  <<: {a: 1}\n  <<: {b: 1}\n")
    assert problem(path) == f"{path}:3: duplicate key '<<' (first on line 2)"


def test_a_batch_merging_its_defaults_into_jobs_loads(write_batch):
    path = write_batch(
        """
        name: merged
        defaults: &d
          prompt: the default prompt
          inputs: {color: videos/color.mp4}
          controls: {edge: 0.5}
          num_steps: 10
        jobs:
          - <<: *d
            name: a
            prompt: its own prompt
          - name: b
            <<: *d
            num_steps: 20
        """
    )
    batch = load_batch(path)
    first, second = batch.jobs
    assert (first.name, first.prompt, first.sampling) == ("a", "its own prompt", {"num_steps": 10})
    assert (second.name, second.prompt) == ("b", "the default prompt")
    assert second.sampling == {"num_steps": 20}
    assert second.controls == {"edge": 0.5}


def test_a_bad_merged_value_is_reported_on_the_line_it_is_written(write_batch):
    path = write_batch(
        """
        name: merged
        jobs:
          - &first
            name: a
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
            guidance: 99
          - <<: *first
            name: b
        """,
    )
    with pytest.raises(ValidationError) as caught:
        load_batch(path)
    assert caught.value.problems == [
        f"{path}:8: jobs[0] (a).guidance: must be from 0 to 20, got 99",
        f"{path}:8: jobs[1] (b).guidance: must be from 0 to 20, got 99",
    ]


# --- aliases -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: &x [*x]\n", 1),
        ("a: &x {b: *x}\n", 1),
        ("a: &x\n  - 1\n  - [2, *x]\n", 3),
        ("base: &x\n  <<: *x\n  b: 1\n", 2),  # a mapping that merges itself
        ("a: &x\n  b:\n    c: *x\n", 3),
    ],
)
def test_an_alias_that_refers_to_itself_is_refused(tmp_path, loader, text, line):
    path = write(tmp_path, text)
    assert problem(path) == (
        f"{path}:{line}: an alias refers to itself: a list or mapping cannot contain itself"
    )


def test_a_billion_laughs_alias_bomb_is_refused_naming_its_line(tmp_path, loader):
    path = write(tmp_path, billion_laughs(levels=9, width=9))
    # Level k (line k) expands to about 9**k nodes; a small file may expand to MIN_EXPANSION.
    assert 9**5 < MIN_EXPANSION < 9**6
    assert problem(path) == (
        f"{path}:6: the document expands too much: its aliases make more than "
        f"{MIN_EXPANSION:,} nodes ({LIMITS})"
    )


def test_a_larger_file_may_expand_to_as_many_nodes_as_it_has_bytes(tmp_path, loader):
    padding = "#" * (7 * MIN_EXPANSION) + "\n"
    path = write(tmp_path, padding + billion_laughs(levels=6, width=9))
    assert len(load_lined(path).data["f"]) == 9  # 9**6 nodes: more than MIN_EXPANSION
    path = write(tmp_path, "#" * MAX_NODES + "\n" + billion_laughs(levels=7, width=9))
    assert problem(path) == (
        f"{path}:8: the document expands too much: its aliases make more than "
        f"{MAX_NODES:,} nodes ({LIMITS})"
    )


def test_a_merge_key_bomb_is_refused(tmp_path, loader):
    lines = ["m0: &m0 {a: 1, b: 2}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}" for i in range(1, 10)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert "the document expands too much" in problem(path)


def test_shared_aliases_within_the_budget_expand(tmp_path, loader):
    path = write(tmp_path, billion_laughs(levels=3, width=9))
    document = load_lined(path)
    assert len(document.data["c"]) == 9
    assert document.data["c"][8][8] == ["lol"] * 9
    assert document.lines["c[8][8][8]"] == 1  # the line of the anchored list


def test_an_undefined_alias_is_not_valid_yaml(tmp_path):
    path = write(tmp_path, "a: 1\nb: *nowhere\n")
    assert problem(path).startswith(f"{path}:2: not valid YAML (found undefined alias")


def test_a_duplicate_anchor_names_both_lines(tmp_path, loader):
    path = write(tmp_path, "a: &x 1\nb: &x 2\n")
    message = problem(path)
    assert message.startswith(f"{path}:2: not valid YAML (found duplicate anchor")
    assert message.endswith(", first on line 1)")


# --- nesting and size --------------------------------------------------------------------------


def test_nesting_past_the_limit_is_refused_with_its_line(tmp_path, loader):
    path = write(tmp_path, "a: 1\nb: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n")
    assert problem(path) == (
        f"{path}:2: lists and mappings nest more than {MAX_DEPTH} levels deep ({LIMITS})"
    )


def test_nesting_at_the_limit_is_fine(tmp_path, loader):
    path = write(tmp_path, "[" * MAX_DEPTH + "x" + "]" * MAX_DEPTH + "\n")
    data = load_lined(path).data
    for _ in range(MAX_DEPTH - 1):
        data = data[0]
    assert data == ["x"]


def test_block_nesting_past_the_limit_is_refused(tmp_path, loader):
    text = "".join("  " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 2))
    path = write(tmp_path, text)
    assert problem(path).endswith(f"nest more than {MAX_DEPTH} levels deep ({LIMITS})")


def test_aliases_nesting_past_the_limit_are_refused(tmp_path, loader):
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_DEPTH + 5)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert "nest more than 64 levels deep" in problem(path)


@pytest.mark.parametrize("opening", ["[", "{", "- "])
def test_a_hundred_thousand_openings_give_one_line_not_a_recursion_error(tmp_path, loader, opening):
    path = write(tmp_path, opening * 100_000)
    message = problem(path)
    assert message.startswith(f"{path}:1: ")
    assert "nest more than 64 levels deep" in message or "not valid YAML" in message


def test_a_recursion_error_anywhere_becomes_one_line(tmp_path, monkeypatch):
    def too_deep(*_args, **_kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(yaml, "compose", too_deep)
    path = write(tmp_path, "a: 1\n")
    assert problem(path) == (
        f"{path}: lists and mappings nest more than {MAX_DEPTH} levels deep ({LIMITS})"
    )


def test_too_many_nodes_are_refused_before_composing(tmp_path, loader, monkeypatch):
    monkeypatch.setattr(yaml_lines, "MAX_NODES", 1_000)
    monkeypatch.setattr(yaml_lines, "_TOO_MANY", "holds more than 1,000 YAML nodes")
    path = write(tmp_path, "[" + "0, " * 2_000 + "0]\n")
    assert problem(path) == f"{path}: holds more than 1,000 YAML nodes"


def test_a_long_base_60_number_is_refused_quickly(tmp_path):
    path = write(tmp_path, "seed: 1" + ":59" * 200_000 + "\n")
    assert problem(path) == (
        f"{path}:1: a number longer than 4,300 characters; quote it to keep it as text"
    )


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: 1\n? [a, b]\n: 1\n", 2), ("a: 1\n{b: 1}: 2\n", 2), ("x:\n  [1, 2]: 3\n", 2)],
)
def test_a_key_that_is_a_list_or_mapping_is_refused(tmp_path, loader, text, line):
    path = write(tmp_path, text)
    assert problem(path) == (
        f"{path}:{line}: a mapping key must be plain text, not a list or mapping"
    )


def test_a_duplicate_key_names_its_first_line(tmp_path, loader):
    path = write(tmp_path, "name: b\njobs:\n  - name: a\n    seed: 1\n    seed: 2\n")
    assert problem(path) == f"{path}:5: duplicate key 'seed' (first on line 4)"


def test_a_duplicate_top_level_key(tmp_path, loader):
    path = write(tmp_path, "x: 1\ny: 2\nx: 3\n")
    assert problem(path) == f"{path}:3: duplicate key 'x' (first on line 1)"


def test_a_long_duplicate_key_is_cut(tmp_path):
    key = "k" * 200
    path = write(tmp_path, f"{key}: 1\n{key}: 2\n")
    message = problem(path)
    assert message.startswith(f"{path}:2: duplicate key ''{'k' * 64}'…' (first on line 1)")
    assert len(message) < len(str(path)) + 120


# --- tags and odd scalars ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object:os.system echo\n", "!!python/object:os.system"),
        ("a: !!python/object/apply:os.system [echo]\n", "!!python/object/apply:os.system"),
        ("a: !foo x\n", "!foo"),
        ("a: !foo {b: 1}\n", "!foo"),
        ("a: !foo [1]\n", "!foo"),
        ("a: !!omap [{b: 1}]\n", "!!omap"),
    ],
)
def test_non_standard_tags_are_refused_with_their_line(tmp_path, loader, text, tag):
    path = write(tmp_path, "name: b\n" + text)
    assert problem(path) == (
        f"{path}:2: unsupported tag '{tag}'; use plain text, numbers, lists and mappings"
    )


def test_a_scalar_that_does_not_construct_names_its_tag(tmp_path, loader):
    path = write(tmp_path, "name: b\nwhen: 2001-13-14\n")
    assert problem(path) == (
        f"{path}:2: cannot read 2001-13-14 as !!timestamp (ValueError: month must be in "
        "1..12); quote it to keep it as text"
    )


@pytest.mark.parametrize("text", ["a: !!int x\n", "a: !!bool maybe\n", "a: !!timestamp no\n"])
def test_an_explicit_tag_on_a_bad_value_is_one_line(tmp_path, text):
    path = write(tmp_path, text)
    assert problem(path).startswith(f"{path}:1: cannot read ")


def test_odd_scalar_types_stay_as_they_are(tmp_path, loader):
    path = write(
        tmp_path,
        "when: 2001-12-14\nstamp: 2001-12-14 21:59:43\nblob: !!binary aGVsbG8=\n"
        "tags: !!set {x, y}\nnan: .nan\ninf: -.inf\nnothing: ~\nflag: true\nequals: =\n",
    )
    data = load_lined(path).data
    assert data["when"] == datetime.date(2001, 12, 14)
    assert data["stamp"] == datetime.datetime(2001, 12, 14, 21, 59, 43)
    assert data["blob"] == b"hello"
    assert data["tags"] == {"x", "y"}
    assert math.isnan(data["nan"])
    assert data["inf"] == -math.inf
    assert data["nothing"] is None
    assert data["flag"] is True
    assert data["equals"] == "="


def test_odd_types_reach_the_batch_validator_as_wrong_types(write_batch):
    path = write_batch(
        """
        name: odd
        jobs:
          - name: a
            prompt: !!binary aGVsbG8=
            inputs: {color: videos/color.mp4}
            controls: !!set {edge}
            seed: .nan
        """
    )
    with pytest.raises(ValidationError) as caught:
        load_batch(path)
    lines = str(caught.value).splitlines()
    assert len(lines) >= 3
    assert all(line.startswith(f"{path}:") for line in lines)


# --- syntax and documents ------------------------------------------------------------------


def test_a_syntax_error_is_one_line_with_its_line(tmp_path, loader):
    path = write(tmp_path, 'name: b\nprompt: "unterminated\n')
    message = problem(path)
    assert message.startswith(f"{path}:")
    assert "not valid YAML (" in message


def test_a_second_document_is_refused_on_its_line(tmp_path, loader):
    path = write(tmp_path, "name: a\njobs: []\n---\nname: b\n")
    assert problem(path) == (
        f"{path}:3: holds more than one YAML document: a second one starts here; keep one"
    )


def test_a_single_explicit_document_is_fine(tmp_path, loader):
    path = write(tmp_path, "---\nname: a\n...\n")
    assert load_lined(path).data == {"name": "a"}


def test_an_empty_file_is_no_data(tmp_path):
    assert load_lined(write(tmp_path, "")).data is None
    assert load_lined(write(tmp_path, "# nothing\n", "comment.yaml")).data is None


# --- lines -------------------------------------------------------------------------------------


def test_every_key_and_item_keeps_its_line(tmp_path, loader):
    path = write(
        tmp_path,
        "name: b\njobs:\n  - name: a\n    prompt: p\n    inputs:\n      color: c.mp4\n"
        "  - {name: z, seed: [1, 2]}\n",
    )
    document = load_lined(path)
    assert document.lines == {
        "name": 1,
        "jobs": 2,
        "jobs[0]": 3,
        "jobs[0].name": 3,
        "jobs[0].prompt": 4,
        "jobs[0].inputs": 5,
        "jobs[0].inputs.color": 6,
        "jobs[1]": 7,
        "jobs[1].name": 7,
        "jobs[1].seed": 7,
        "jobs[1].seed[0]": 7,
        "jobs[1].seed[1]": 7,
    }
    assert document.line_of("jobs[0].inputs.depth") == 5
    assert document.line_of("nowhere") is None
