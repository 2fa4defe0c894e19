"""Checkpoint manifests: load and validate (every problem at once, with file:line), write."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from cosmos_driver import checkpoints
from cosmos_driver.checkpoints import (
    Manifest,
    ManifestEntry,
    entries_from_module,
    load_manifest,
    manifest_entries_for_module,
    manifest_path,
    write_manifest,
)
from cosmos_driver.errors import ValidationError

A = "a" * 64
B = "0123456789abcdef" * 4


def manifest_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "transfer1.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_manifest(path)
    assert caught.value.exit_code == 2
    return caught.value.problems


def test_a_valid_manifest_loads_sorted_by_path(tmp_path):
    path = manifest_file(
        tmp_path,
        f"""
        schema: 1
        profile: transfer1
        ignore: [".cache/**"]
        files:
          - path: nvidia/M/z.pt
            size: 3
            sha256: {A}
          - path: nvidia/M/a.pt
            size: 0
            sha256: "{B}"
        """,
    )
    manifest = load_manifest(path)
    assert manifest == Manifest(
        "transfer1",
        (ManifestEntry("nvidia/M/a.pt", 0, B), ManifestEntry("nvidia/M/z.pt", 3, A)),
        (".cache/**",),
    )
    assert manifest.source == path


def test_every_problem_is_reported_at_once_with_its_line(tmp_path, line_of):
    path = manifest_file(
        tmp_path,
        f"""
        schema: 1
        profile: transfer1
        files:
          - path: /abs/a.pt
            size: 1
            sha256: {A}
          - path: nvidia/../b.pt
            size: -4
            sha256: {A.upper()}
          - path: nvidia/c.pt
            size: 1
            sha256: {A}
          - path: nvidia/c.pt
            size: 2
            sha256: {A}
            md5: x
        """,
    )
    found = problems(path)
    assert found == [
        f"{path}:{line_of(path, '/abs/a.pt')}: files[0].path: '/abs/a.pt' is absolute; "
        "write it relative to the checkpoint directory",
        f"{path}:{line_of(path, 'nvidia/../b.pt')}: files[1].path: 'nvidia/../b.pt' contains "
        "'..'; write the path inside the checkpoint directory",
        f"{path}:{line_of(path, 'size: -4')}: files[1].size: must be the file's size in bytes "
        "(a whole number >= 0), got -4",
        f"{path}:{line_of(path, A.upper())}: files[1].sha256: must be 64 lowercase hex digits "
        f"(as sha256sum prints them), got '{A.upper()}'",
        f"{path}:{line_of(path, 'md5: x')}: files[3].md5: unknown key; valid: path, size, sha256",
        f"{path}:{line_of(path, 'nvidia/c.pt', 2)}: files[3].path: nvidia/c.pt is listed twice "
        "(also files[2])",
    ]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"path": "a//b.pt"}, "is not a plain POSIX path"),
        ({"path": "./b.pt"}, "is not a plain POSIX path"),
        ({"path": "a\\b.pt"}, "is not a plain POSIX path"),
        ({"path": ".cosmos-verify-stamp.json"}, "is the verification stamp"),
        ({"path": ".cache/x"}, "matches the ignore glob '.cache/**'"),
        ({"path": ""}, "required: the file's path"),
        ({"size": True}, "must be the file's size in bytes"),
        ({"size": "12"}, "must be the file's size in bytes"),
        ({"sha256": "abc"}, "must be 64 lowercase hex digits"),
        ({"sha256": "g" * 64}, "must be 64 lowercase hex digits"),
    ],
)
def test_each_bad_field_is_named(tmp_path, entry, expected):
    item = {"path": "ok.pt", "size": 1, "sha256": A, **entry}
    body = {"schema": 1, "profile": "p", "ignore": [".cache/**"], "files": [item]}
    path = manifest_file(tmp_path, yaml.safe_dump(body))
    (problem,) = problems(path)
    field = next(iter(entry))
    assert f": files[0].{field}: " in problem
    assert expected in problem


def test_top_level_problems(tmp_path, line_of):
    path = manifest_file(
        tmp_path,
        """
        schema: 2
        ignore: "*.lock"
        files: {}
        extra: 1
        """,
    )
    assert problems(path) == [
        f"{path}:{line_of(path, 'extra')}: extra: unknown key; valid: schema, profile, ignore, "
        "files",
        f"{path}:{line_of(path, 'schema')}: schema: must be 1, got 2",
        f"{path}: profile: required: the model profile's name, for example transfer1",
        f"{path}:{line_of(path, 'ignore')}: ignore: must be a list of globs, for example "
        '[".cache/**"]',
        f"{path}:{line_of(path, 'files')}: files: required: a list of {{path, size, sha256}} "
        "entries ([] when none)",
    ]


def test_a_manifest_that_is_not_a_mapping_is_refused(tmp_path):
    path = manifest_file(tmp_path, "- a\n- b\n")
    assert problems(path) == [
        f"{path}: a manifest is a mapping with schema, profile, ignore and files "
        "(see manifests/README.md)"
    ]


def test_written_manifests_load_back_sorted(tmp_path):
    path = tmp_path / "out" / "transfer1.yaml"
    entries = [ManifestEntry("b/2.pt", 2, B), ManifestEntry("a/1.pt", 1, A)]
    write_manifest(path, "transfer1", entries, ignore=(".cache/**",))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Checkpoint manifest")
    assert text.index("a/1.pt") < text.index("b/2.pt")
    manifest = load_manifest(path)
    assert manifest.files == tuple(sorted(entries, key=lambda e: e.path))
    assert (manifest.profile, manifest.ignore) == ("transfer1", (".cache/**",))
    assert not [p for p in path.parent.iterdir() if p.name != "transfer1.yaml"], "no temp left"


def test_a_digest_of_digits_only_survives_the_round_trip(tmp_path):
    path = tmp_path / "m.yaml"
    digits = "0123456789" * 6 + "0123"
    write_manifest(path, "p", [ManifestEntry("a.pt", 1, digits)])
    assert load_manifest(path).files[0].sha256 == digits


def test_entries_go_to_the_module_and_come_back(tmp_path):
    manifest = Manifest("p", (ManifestEntry("a.pt", 1, A),))
    for_module = manifest_entries_for_module(manifest)
    assert for_module == [{"path": "a.pt", "size": 1, "sha256": A}]
    assert entries_from_module(for_module) == list(manifest.files)


def test_the_shipped_transfer1_manifest_loads_and_invents_no_hashes():
    manifest = load_manifest(manifest_path("transfer1"))
    assert manifest.profile == "transfer1"
    assert manifest.files == ()
    assert "**/.cache/**" in manifest.ignore
    assert manifest_path("transfer1").parent == checkpoints.MANIFESTS
