"""checkpoints.manifest replaces a manifest only with one that reads back, keeping its globs."""

from __future__ import annotations

import pytest

from cosmos_driver.checkpoints import ManifestEntry, load_manifest, write_manifest
from cosmos_driver.errors import ValidationError
from cosmos_driver.tasks.checkpoints import RECORDED_IGNORE, _replace_manifest

SHA = "ab" * 32


def test_a_recording_keeps_the_old_manifests_ignore_globs(tmp_path):
    path = tmp_path / "transfer1.yaml"
    write_manifest(path, "transfer1", [ManifestEntry("old.pt", 1, SHA)], ignore=("site/**",))

    _replace_manifest(path, "transfer1", [ManifestEntry("nvidia/new.pt", 5, SHA)])

    manifest = load_manifest(path)
    assert [e.path for e in manifest.files] == ["nvidia/new.pt"]
    assert manifest.ignore == ("site/**", *RECORDED_IGNORE)
    assert [p.name for p in tmp_path.iterdir()] == ["transfer1.yaml"]


def test_a_recording_that_does_not_read_back_leaves_the_old_manifest(tmp_path):
    path = tmp_path / "transfer1.yaml"
    write_manifest(path, "transfer1", [ManifestEntry("old.pt", 1, SHA)])
    before = path.read_bytes()

    with pytest.raises(ValidationError):
        _replace_manifest(path, "transfer1", [ManifestEntry("a/../escape.pt", 1, SHA)])

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["transfer1.yaml"]
