"""One job at a time through the real playbooks, ansible-runner, sshd and dockerd."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid

import cv2

from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import ROOT, cosmos, infer_json


def frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def test_demo_batch_succeeds_with_decodable_outputs(lab, tmp_path):
    state = tmp_path / "state"
    result = cosmos(
        "infer",
        "--batch",
        "examples/demo.yaml",
        "--state-dir",
        str(state),
        "--inventory",
        str(lab.inventory),
        "--json",
    )
    assert result.code == 0, result.stderr
    report = result.json()
    assert [r["state"] for r in report["runs"]] == ["succeeded", "succeeded"]
    expected_frames = frame_count(ROOT / "examples/inputs/street-color.mp4")
    for run in report["runs"]:
        run_dir = state / "runs" / run["run_id"]
        assert frame_count(run_dir / "outputs/output.mp4") == expected_frames
        assert (run_dir / "outputs/output.txt").read_text().strip()
        assert "Diffusion sampling" in (run_dir / "logs/container.log").read_text()
        states = [step["state"] for step in run["history"]]
        # The wait phase that sees the exit collects in the same play: no separate
        # "collecting" step on the success path.
        assert states == ["pending", "staging", "running", "succeeded"]
        exit_ = json.loads((run_dir / "logs/container-exit.json").read_text())
        assert exit_["exit_code"] == 0
    assert lab.containers(f"cosmos.batch_id={report['batch_id']}") == []


def test_failing_container_ends_failed_with_its_log_and_exit_code(lab, tmp_path):
    batch = write_batch(
        tmp_path,
        "fails",
        [job("boom", env={"COSMOS_SIM_EXIT_CODE": "3", "COSMOS_SIM_DURATION": "1"})],
    )
    result = infer_json(batch, tmp_path / "state", lab.inventory)
    assert result.code == 1
    (run,) = result.json()["runs"]
    assert run["state"] == "failed"
    assert run["failure"]["reason"] == "container_exit"
    assert "code 3" in run["failure"]["detail"]
    assert run["failure"]["log_tail"], "the record carries the tail of the container log"
    container_log = tmp_path / "state" / "runs" / run["run_id"] / "logs" / "container.log"
    assert "Diffusion sampling" in container_log.read_text()
    assert lab.containers(f"cosmos.run_id={run['run_id']}") == []


def test_rerun_skips_succeeded_runs_and_keeps_their_records(lab, tmp_path):
    batch = write_batch(tmp_path, "again", [job("once")])
    args = (
        "infer",
        "--batch",
        str(batch),
        "--state-dir",
        str(tmp_path / "state"),
        "--inventory",
        str(lab.inventory),
        "--json",
    )
    first = cosmos(*args)
    assert first.code == 0, first.stderr
    second = cosmos(*args)
    assert second.code == 0, second.stderr
    assert second.json()["runs"] == []
    assert second.json()["skipped"] == [first.json()["runs"][0]["run_id"]]


def test_bad_batch_is_rejected_before_anything_starts(lab, tmp_path):
    batch = write_batch(tmp_path, "bad", [job("typo", controls={"egde": 0.5})])
    state = tmp_path / "state"
    result = cosmos(
        "infer", "--batch", str(batch), "--state-dir", str(state), "--inventory", str(lab.inventory)
    )
    assert result.code == 2
    assert f"{batch}:" in result.stderr
    assert "jobs[0] (typo).controls.egde" in result.stderr
    assert "did you mean 'edge'" in result.stderr
    assert not state.exists(), "nothing may be recorded or started for an invalid batch"


def test_host_key_mismatch_is_refused(lab, tmp_path):
    """Host key checking stays on: a wrong known_hosts entry makes the host unreachable.

    A fresh ControlPath folder forces a new SSH handshake (a persisted master connection was
    verified when it was opened and would be reused)."""
    wrong_keys = tmp_path / "known_hosts"
    entries = lab.paths.known_hosts.read_text().split()
    forged = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "forged")], check=True
    )
    assert forged.returncode == 0
    forged_key = (tmp_path / "forged.pub").read_text().split()
    wrong_keys.write_text(f"{entries[0]} {forged_key[0]} {forged_key[1]}\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        lab.inventory.read_text().replace(str(lab.paths.known_hosts), str(wrong_keys))
    )
    batch = write_batch(tmp_path, "mitm", [job("refused")])
    control_dir = tmp_path / "cp"
    control_dir.mkdir()
    result = cosmos(
        "infer",
        "--batch",
        str(batch),
        "--state-dir",
        str(tmp_path / "state"),
        "--inventory",
        str(inventory),
        "--json",
        env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)},
    )
    assert result.code == 1
    (run,) = result.json()["runs"]
    assert run["failure"]["reason"] == "host_unreachable"
    assert "Host key verification failed" in run["failure"]["detail"]


def test_job_playbook_runs_on_its_own(lab, tmp_path):
    fetch = tmp_path / "fetched"
    done = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(lab.inventory),
            "cosmos.driver.job",
            # One host: the lab's hosts share one engine, so the same run id on both would
            # be one container that each host collects (and removes) under the other.
            "--limit",
            "lab-1",
            "-e",
            "@examples/job-vars.yml",
            "-e",
            json.dumps(
                {"cosmos_job_fetch_dir": str(fetch), "cosmos_job_run_id": "standalone-test"}
            ),
        ],
        cwd=ROOT,
        env={**os.environ, "PWD": str(ROOT)},  # as a shell in the checkout sets it
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert frame_count(fetch / "outputs/output.mp4") == frame_count(
        ROOT / "examples/inputs/street-color.mp4"
    )
    assert lab.containers("cosmos.run_id=standalone-test") == []


def test_mismatched_inputs_fail_before_upload_naming_each(lab, tmp_path):
    """A depth video of another size and length than the color video: nothing starts."""
    short = tmp_path / "inputs" / "short-depth.mp4"
    write_batch(tmp_path, "unused", [job("x")])
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24",
         "-frames:v", "20", "-c:v", "mpeg4", str(short)],
        check=True,
    )  # fmt: skip
    mixed = job("mixed", inputs={"color": "inputs/street-color.mp4",
                                 "depth": "inputs/short-depth.mp4"},
                controls={"depth": 0.5})  # fmt: skip
    batch = write_batch(tmp_path, "mismatch", [mixed])
    state = tmp_path / "state"
    result = cosmos("infer", "--batch", str(batch), "--state-dir", str(state),
                    "--inventory", str(lab.inventory))  # fmt: skip
    assert result.code == 2, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any("job mixed" in p and "depth" in p and "frame" in p for p in problems), problems
    assert any("job mixed" in p and "depth" in p and "160" in p for p in problems), problems
    assert not (state / "runs").exists()


def test_an_input_the_host_lacks_is_uploaded_before_the_start(lab, tmp_path):
    """The launch starts nothing while the host's input store lacks an input: the play
    uploads it, named by its sha256, then starts the job."""
    fresh = tmp_path / "inputs" / "fresh-color.mp4"
    write_batch(tmp_path, "unused", [job("x")])
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x176:rate=24",
         "-frames:v", "24", "-c:v", "mpeg4", "-metadata", f"comment={uuid.uuid4()}",
         str(fresh)],
        check=True,
    )  # fmt: skip
    name = hashlib.sha256(fresh.read_bytes()).hexdigest() + ".mp4"
    stores = {f"lab-{i}": lab.paths.remote_root(i) / "inputs" / name for i in (1, 2)}
    assert [store.exists() for store in stores.values()] == [False, False], "the input must be new"
    fresh_job = job("fresh", inputs={"color": "inputs/fresh-color.mp4"})
    batch = write_batch(tmp_path, "fresh", [fresh_job])

    result = infer_json(batch, tmp_path / "state", lab.inventory)

    assert result.code == 0, result.stderr
    (run,) = result.json()["runs"]
    assert run["state"] == "succeeded"
    assert [host for host, store in stores.items() if store.exists()] == [run["host"]]
    assert stores[run["host"]].read_bytes() == fresh.read_bytes()
    run_dir = tmp_path / "state" / "runs" / run["run_id"]
    assert frame_count(run_dir / "outputs" / "output.mp4") == 24
    playbook_log = (run_dir / "logs" / "ansible.log").read_text()
    assert playbook_log.count("PLAY [Cosmos job | launch]") == 1, "upload and start: one play"
    assert "Start now that every input is there" in playbook_log
