"""The cosmos_checkpoints role against a lab host and the lab's checkpoint mirror, through the
driver's ansible adapter (the token travels its secret channel, as under `invoke setup`).

Every test downloads into a checkpoint folder of its own; faults injected on the mirror are
lifted when the test ends."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall, PlaybookOutcome
from cosmos_driver.checkpoints import Manifest, load_manifest

# A made-up token: it must reach the mirror and never any file.
TOKEN = "hf_itest-checkpoints-4d2b9e"
PLAY = [
    {
        "name": "Checkpoints on one lab host",
        "hosts": "lab-1",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the checkpoints role",
                "ansible.builtin.include_role": {"name": "cosmos.driver.cosmos_checkpoints"},
            },
            {
                "name": "Hand the report to the driver",
                "ansible.builtin.set_stats": {
                    "data": {"report": "{{ cosmos_checkpoints_report }}"},
                },
            },
        ],
    }
]


@pytest.fixture
def manifest(lab) -> Manifest:
    return load_manifest(lab.paths.mirror_manifest)


@pytest.fixture
def faults(lab):
    """Write the mirror's faults file; it is emptied when the test ends, whatever happens."""

    def inject(faults: dict[str, str]) -> None:
        lab.paths.mirror_faults.write_text(json.dumps(faults))

    yield inject
    lab.paths.mirror_faults.write_text("{}")


class RoleRunner:
    """Runs the role on lab-1 into one checkpoint folder, with the adapter, and keeps its log."""

    def __init__(self, lab, folder: Path) -> None:
        self.dest = folder / "checkpoints"
        self.log = folder / "playbook.log"
        self.playbook = folder / "checkpoints.yml"
        self.playbook.write_text(yaml.safe_dump(PLAY, sort_keys=False))
        self.adapter = AnsibleAdapter(lab.inventory, folder / "runner")

    def __call__(self) -> PlaybookOutcome:
        call = PlaybookCall(
            playbook=str(self.playbook),
            limit="lab-1",
            extravars={
                "cosmos_checkpoints_dir": str(self.dest),
                "cosmos_checkpoints_retries": 2,
                "cosmos_checkpoints_retry_delay": 0,
            },
            secrets={"hf_token": TOKEN},
        )
        return self.adapter.run(call, log_path=self.log)


@pytest.fixture
def run_role(lab, tmp_path) -> RoleRunner:
    return RoleRunner(lab, tmp_path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_tree_matches(dest: Path, manifest: Manifest) -> None:
    for entry in manifest.files:
        path = dest / entry.path
        assert path.stat().st_size == entry.size, entry.path
        assert sha256(path) == entry.sha256, entry.path


def mirror_log(lab) -> str:
    return (lab.paths.mirror / "mirror.log").read_text()


def assert_token_nowhere(lab, run_role: RoleRunner) -> None:
    """Not in the playbook log, the mirror's log, the host's checkpoint folder or the runner's
    scratch folder."""
    assert TOKEN not in mirror_log(lab)
    written = [run_role.log, *(p for p in run_role.dest.rglob("*") if p.is_file())]
    written += [p for p in run_role.adapter.scratch_dir.rglob("*") if p.is_file()]
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_from_scratch_downloads_and_verifies_then_downloads_nothing(lab, run_role, manifest):
    first = run_role()
    assert first.ok, first.summary()
    report = first.data["report"]
    paths = [e.path for e in manifest.files]
    assert report["downloaded"] == paths
    assert report["verified"] is True
    assert report["files"] == len(paths)
    assert report["bytes"] == sum(e.size for e in manifest.files)
    assert_tree_matches(run_role.dest, manifest)
    served = mirror_log(lab)
    for path in paths:
        assert f"GET /{path} 200 auth=yes" in served

    mtimes = {p: p.stat().st_mtime_ns for p in run_role.dest.rglob("*.pt")}
    second = run_role()
    assert second.ok, second.summary()
    assert second.data["report"]["downloaded"] == []
    assert second.data["report"]["verified"] is True
    assert second.recap["lab-1"]["changed"] == 0
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert_token_nowhere(lab, run_role)


def test_a_corrupted_and_a_missing_file_are_fetched_again(lab, run_role, manifest):
    shutil.copytree(lab.paths.mirror_files, run_role.dest)
    corrupted = run_role.dest / "nvidia/Cosmos-Transfer1-7B/edge_control.pt"
    data = bytearray(corrupted.read_bytes())
    data[1000] ^= 0xFF  # same size, other content; the write moves its mtime
    corrupted.write_bytes(bytes(data))
    missing = run_role.dest / "nvidia/Cosmos-Tokenize1-CV8x8x8-720p/decoder.jit"
    missing.unlink()

    outcome = run_role()
    assert outcome.ok, outcome.summary()
    assert outcome.data["report"]["downloaded"] == [
        "nvidia/Cosmos-Tokenize1-CV8x8x8-720p/decoder.jit",
        "nvidia/Cosmos-Transfer1-7B/edge_control.pt",
    ]
    assert_tree_matches(run_role.dest, manifest)


def test_a_download_that_leaves_a_wrong_file_fails_the_host_naming_it(
    lab, run_role, manifest, faults
):
    bad = {
        "nvidia/Cosmos-Transfer1-7B/vis_control.pt": "wrong-content",
        "nvidia/Cosmos-Transfer1-7B/seg_control.pt": "truncate",
        "nvidia/Cosmos-Tokenize1-CV8x8x8-720p/config.json": "missing",
    }
    faults(bad)
    failed = run_role()
    assert not failed.ok
    (failure,) = failed.failures
    assert failure.host == "lab-1"
    assert "Check the tree against the manifest" in failure.task
    for path in bad:
        assert path in failure.message
    assert "3 checkpoint problems" in failure.message

    faults({})
    mended = run_role()
    assert mended.ok, mended.summary()
    assert mended.data["report"]["downloaded"] == sorted(bad)
    assert_tree_matches(run_role.dest, manifest)
    assert_token_nowhere(lab, run_role)


def test_an_unexpected_file_fails_the_host_and_is_left_alone(lab, run_role):
    shutil.copytree(lab.paths.mirror_files, run_role.dest)
    stray = run_role.dest / "nvidia/Cosmos-Transfer1-7B/stray.bin"
    stray.write_bytes(b"not in the manifest")

    outcome = run_role()
    assert not outcome.ok
    assert "unexpected nvidia/Cosmos-Transfer1-7B/stray.bin" in outcome.failures[0].message
    assert stray.read_bytes() == b"not in the manifest"
