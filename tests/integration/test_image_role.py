"""The image role for real against the lab: a git clone of the lab's source repository and a
sync of a local checkout, each built by the lab's engine once and then left alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall
from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.source_repo import SourceRepo

pytestmark = pytest.mark.lab

HOST = "lab-2"  # lab-1 is the Molecule scenario's host


def converge(lab, tmp_path: Path, **extravars) -> dict[str, int]:
    """Run setup.yml's image stage on one lab host; return its recap counts."""
    adapter = AnsibleAdapter(lab.inventory, tmp_path / "runner")
    outcome = adapter.run(
        PlaybookCall(playbook="setup.yml", limit=HOST, tags="image", extravars=extravars),
        log_path=tmp_path / "image.log",
    )
    assert outcome.ok, outcome.summary()
    return outcome.recap[HOST]


def labels(lab, image: str) -> dict[str, str]:
    return json.loads(lab.engine("image", "inspect", "--format", "{{json .Config.Labels}}", image))


def test_git_source_builds_the_pinned_commit_then_changes_nothing(lab, tmp_path):
    image = "cosmos-image-test:git"
    first = converge(lab, tmp_path, cosmos_image_name=image, cosmos_image_rebuild=True)
    again = converge(lab, tmp_path, cosmos_image_name=image)
    assert first["changed"] > 0
    assert again["changed"] == 0
    found = labels(lab, image)
    assert found["cosmos.image.revision"] == SourceRepo(lab.paths.source_repo).head()
    assert found["cosmos.simulator"] == "true"


def test_local_source_is_mirrored_exactly_and_rebuilt_when_it_changes(lab, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(
        lab_control.SIMULATOR_DIR, checkout, ignore=shutil.ignore_patterns("__pycache__")
    )
    (checkout / "checkpoints").mkdir()
    (checkout / "checkpoints" / "base_model.pt").write_bytes(b"not synced")
    (checkout / "NOTES.md").write_text("first\n")
    source_dir = lab.paths.remote_root(2) / "src" / "image-test-local"
    local = {
        "cosmos_image_source": "local",
        "cosmos_image_local_path": str(checkout),
        "cosmos_image_source_dir": str(source_dir),
        "cosmos_image_name": "cosmos-image-test:local",
    }
    converge(lab, tmp_path, **local)
    before = labels(lab, "cosmos-image-test:local")["cosmos.image.revision"]
    assert converge(lab, tmp_path, **local)["changed"] == 0
    assert (source_dir / "NOTES.md").exists()
    assert not (source_dir / "checkpoints").exists()

    (checkout / "NOTES.md").unlink()
    changed = converge(lab, tmp_path, **local)
    after = labels(lab, "cosmos-image-test:local")["cosmos.image.revision"]
    assert changed["changed"] > 0
    assert after != before
    assert after.startswith("sha256:")
    assert not (source_dir / "NOTES.md").exists()
