"""`cosmos setup`, `cosmos health` and `cosmos checkpoints.*` against the lab, as a user runs
them: from scratch, a second time (no change), with damaged checkpoints, and with a known
token that must reach the mirror and no file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cosmos_driver.checkpoints import load_manifest
from tests.fakes.cli import cosmos

# A made-up token: the setup run must use it (the mirror logs auth=yes) and write it nowhere.
TOKEN = "hf_setupTEST-7c41e0b9a2d84f65"
LAB_HOSTS = ("lab-1", "lab-2")


def run_setup(lab, state: Path, *args: str, env: dict[str, str] | None = None):
    return cosmos(
        "setup",
        "--inventory",
        str(lab.inventory),
        "--state-dir",
        str(state),
        "--json",
        *args,
        env=env,
    )


def checkpoint_dir(lab, index: int) -> Path:
    return lab.paths.remote_root(index) / "checkpoints"


@pytest.fixture(scope="module")
def from_scratch(lab, tmp_path_factory):
    """Setup on hosts without checkpoints or source checkout, then again; both results."""
    for index in (1, 2):
        shutil.rmtree(checkpoint_dir(lab, index), ignore_errors=True)
        shutil.rmtree(lab.paths.remote_root(index) / "src", ignore_errors=True)
    state = tmp_path_factory.mktemp("setup-state")
    mirror_log = lab.paths.mirror / "mirror.log"
    log_start = mirror_log.stat().st_size if mirror_log.exists() else 0
    env = {"HF_TOKEN": TOKEN, "COSMOS_KEEP_RUNNER_DIRS": "1"}
    first = run_setup(lab, state, env=env)
    second = run_setup(lab, state, env=env)
    mirror_lines = mirror_log.read_text()[log_start:].splitlines()
    return state, first, second, mirror_lines


def hosts_of(result) -> dict[str, dict]:
    assert result.stdout, result.stderr
    return {h["host"]: h for h in result.json()["hosts"]}


def test_setup_converges_from_scratch_on_every_host(from_scratch):
    _, first, _, mirror_lines = from_scratch
    assert first.code == 0, first.stdout + first.stderr
    hosts = hosts_of(first)
    assert sorted(hosts) == list(LAB_HOSTS)
    for report in hosts.values():
        assert report["ok"], report
        assert report["stages"] == dict.fromkeys(
            ("preflight", "image", "checkpoints", "health"), "ok"
        )
        assert report["changed"] > 0  # the checkpoints were downloaded, the source cloned
        assert report["health"]["ready"] is True
    downloads = [line for line in mirror_lines if " GET " in line]
    assert downloads, "setup downloaded nothing from the mirror"
    assert all(line.endswith("auth=yes") for line in downloads), downloads


def test_a_second_setup_changes_nothing(from_scratch):
    _, _, second, _ = from_scratch
    assert second.code == 0, second.stdout + second.stderr
    for host, report in hosts_of(second).items():
        assert report["ok"], report
        assert report["changed"] == 0, f"{host} changed on the second run: {report}"


def test_health_reports_every_host_ready_with_its_gpus(lab, from_scratch):
    state, *_ = from_scratch
    result = cosmos(
        "health", "--inventory", str(lab.inventory), "--state-dir", str(state), "--json"
    )
    assert result.code == 0, result.stdout + result.stderr
    reports = {r["host"]: r for r in result.json()["hosts"]}
    assert sorted(reports) == list(LAB_HOSTS)
    for report in reports.values():
        assert report["ready"] is True, report
        assert report["gpu_count"] == 2
        assert report["checkpoints_verified"] is True
        assert report["image_present"] is True
    # Kept for the scheduler.
    kept = json.loads((state / "hosts" / "lab-1.json").read_text())
    assert kept["gpu_count"] == 2


def test_the_token_reaches_no_file(lab, from_scratch):
    state, *_ = from_scratch
    runner_dirs = list((state / "tmp").glob("runner-*"))
    assert runner_dirs, "COSMOS_KEEP_RUNNER_DIRS kept no ansible-runner private data dir"
    assert any((d / "artifacts").is_dir() for d in runner_dirs)
    searched = [
        state,  # records, logs, health facts, ansible-runner private dirs and artifacts
        lab.paths.remote_root(1),  # the hosts' Cosmos directories
        lab.paths.remote_root(2),
        lab.paths.mirror,  # the mirror's access log
        Path.home() / ".ansible",  # Ansible's local temp and caches
    ]
    found = [str(f) for root in searched for f in files_under(root) if holds_token(f)]
    assert found == []


def files_under(root: Path) -> list[Path]:
    return (
        [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()] if root.exists() else []
    )


def holds_token(path: Path) -> bool:
    try:
        return TOKEN.encode() in path.read_bytes()
    except OSError:
        return False


@pytest.fixture
def damaged_lab_1(lab, from_scratch):
    """lab-1 with one checkpoint corrupted (same size, new content) and one deleted; the
    mirror's faults are lifted and lab-1 repaired afterwards."""
    manifest = load_manifest(lab.paths.mirror_manifest)
    corrupted, deleted = manifest.files[0].path, manifest.files[1].path
    root = checkpoint_dir(lab, 1)
    target = root / corrupted
    target.write_bytes(bytes(b ^ 0xFF for b in target.read_bytes()))
    (root / deleted).unlink()
    yield corrupted, deleted
    lab.paths.mirror_faults.unlink(missing_ok=True)
    state, *_ = from_scratch
    assert run_setup(lab, state, "--limit", "lab-1", env={"HF_TOKEN": TOKEN}).code == 0


def test_verify_names_a_corrupted_and_a_missing_checkpoint(lab, from_scratch, damaged_lab_1):
    state, *_ = from_scratch
    corrupted, deleted = damaged_lab_1
    result = cosmos(
        "checkpoints.verify",
        "--inventory",
        str(lab.inventory),
        "--state-dir",
        str(state),
        "--json",
    )
    assert result.code == 1
    reports = result.json()["hosts"]
    assert reports["lab-2"]["ok"] is True
    assert reports["lab-1"]["ok"] is False
    assert reports["lab-1"]["missing"] == [deleted]
    assert [w["path"] for w in reports["lab-1"]["wrong_hash"]] == [corrupted]


def test_setup_fails_the_host_naming_files_a_download_left_wrong(lab, from_scratch, damaged_lab_1):
    state, *_ = from_scratch
    corrupted, deleted = damaged_lab_1
    # The mirror answers 200 with wrong bytes: the download "succeeds", the file is wrong.
    lab.paths.mirror_faults.write_text(
        json.dumps({corrupted: "wrong-content", deleted: "wrong-content"})
    )
    result = run_setup(lab, state, env={"HF_TOKEN": TOKEN})
    assert result.code == 1
    hosts = hosts_of(result)
    assert hosts["lab-2"]["ok"] is True
    lab_1 = hosts["lab-1"]
    assert lab_1["failed_stage"] == "checkpoints"
    assert lab_1["stages"]["health"] == "not run"
    assert corrupted in lab_1["message"]
    assert deleted in lab_1["message"]


def test_setup_repairs_damaged_checkpoints_from_a_good_mirror(lab, from_scratch, damaged_lab_1):
    state, *_ = from_scratch
    result = run_setup(
        lab, state, "--limit", "lab-1", "--tags", "checkpoints", env={"HF_TOKEN": TOKEN}
    )
    assert result.code == 0, result.stdout + result.stderr
    (report,) = hosts_of(result).values()
    assert report["stages"] == {"checkpoints": "ok"}
    assert report["changed"] > 0
