"""cosmos_container's `script` action: the run's container written as a shell script for a
Slurm job, the same argv `run` uses (in the foreground), run here against a stand-in engine
CLI that records its arguments and environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

from ansible_collections.cosmos.driver.plugins.module_utils import (
    cosmos_job_container as job_container,
)

FAKE_ENGINE = """#!/bin/bash
echo "$*" >> "$ENGINE_CALLS"
if [ "$1" = run ]; then
  echo "values: $COSMOS_SIM_DURATION $DOCKER_HOST ${CUDA_VISIBLE_DEVICES:-unset}"
  echo "step 2/2"
  exit "${FAKE_EXIT:-0}"
fi
"""


def script_params(tmp_path: Path) -> dict:
    run_dir = tmp_path / "root" / "runs" / "run-1"
    return {
        "action": "script",
        "engine": str(tmp_path / "docker"),
        "name": "cosmos-run-1",
        "image": "cosmos:1",
        "command": ["torchrun", "--nproc_per_node=1", "x.py"],
        "labels": {"cosmos.run_id": "run-1"},
        "mounts": [f"{run_dir}:/cosmos/run"],
        "env": {"COSMOS_SIM_DURATION": "3 s"},
        "secret_env": {},
        "inherit_env": ["CUDA_VISIBLE_DEVICES"],
        "workdir": "/workspace",
        "engine_args": ["--network", "none"],
        "grace": 10,
        "exit_name": "container-exit.json",
        "log_name": "container.log",
        "script": str(run_dir / "slurm-task.sh"),
        "check_mode": False,
        "stage": {
            "run_dir": str(run_dir),
            "spec": "{}",
            "inputs_dir": str(tmp_path / "root" / "inputs"),
            "input_names": ["abc.mp4"],
        },
    }


def write(tmp_path: Path, params: dict) -> dict:
    module = SimpleNamespace(params=params, check_mode=False, fail_json=None)
    engine = SimpleNamespace(env={"DOCKER_HOST": "unix:///lab/docker.sock"})
    return job_container.action_script(module, engine)


def test_script_names_missing_inputs_and_writes_nothing_until_they_are_there(tmp_path):
    params = script_params(tmp_path)
    result = write(tmp_path, params)
    assert result["missing_inputs"] == ["abc.mp4"]
    assert not result["written"]
    assert not Path(params["script"]).exists()


def run_script(tmp_path: Path, exit_code: int) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "docker").write_text(FAKE_ENGINE)
    (tmp_path / "docker").chmod(0o755)
    params = script_params(tmp_path)
    (tmp_path / "root" / "inputs").mkdir(parents=True)
    (tmp_path / "root" / "inputs" / "abc.mp4").write_bytes(b"x")
    result = write(tmp_path, params)
    assert result["written"] and result["changed"]
    assert not write(tmp_path, params)["changed"]  # the same script again: no change
    env = dict(os.environ, ENGINE_CALLS=str(tmp_path / "calls"), FAKE_EXIT=str(exit_code))
    env["CUDA_VISIBLE_DEVICES"] = "1"
    done = subprocess.run(["bash", params["script"]], env=env, capture_output=True, check=False)
    return done, params


def test_the_script_runs_the_container_in_the_foreground_and_saves_log_and_exit(tmp_path):
    done, params = run_script(tmp_path, 3)
    assert done.returncode == 3, done.stderr
    logs = Path(params["stage"]["run_dir"]) / "logs"
    assert (logs / "container.log").read_text().splitlines() == [
        "values: 3 s unix:///lab/docker.sock 1",
        "step 2/2",
    ]
    assert json.loads((logs / "container-exit.json").read_text())["exit_code"] == 3
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "rm -f cosmos-run-1"
    argv = job_container.run_argv(params, detach=False)
    assert calls[1] == " ".join(argv)
    assert "-d" not in argv and "CUDA_VISIBLE_DEVICES" in argv
    assert "3 s" not in calls[1]  # values travel in the environment, never on the command line
    assert calls[2] == "rm -f cosmos-run-1"


def test_a_script_whose_container_exits_0_exits_0(tmp_path):
    done, params = run_script(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    exit_file = Path(params["stage"]["run_dir"]) / "logs" / "container-exit.json"
    assert json.loads(exit_file.read_text())["exit_code"] == 0
