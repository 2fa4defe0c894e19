"""The container module's argv builder: the one place engine command lines are spelled."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MODULE = Path(__file__).resolve().parents[2] / "library" / "cosmos_container.py"
spec = importlib.util.spec_from_file_location("cosmos_container", MODULE)
cosmos_container = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cosmos_container)


def params(**extra):
    base = {
        "name": "cosmos-run-1",
        "image": "cosmos:1",
        "command": ["torchrun", "--nproc_per_node=2", "x.py"],
        "labels": {"cosmos.run_id": "run-1", "cosmos.batch_id": "b"},
        "mounts": ["/h/run:/cosmos/run", "/h/in:/cosmos/inputs:ro"],
        "env": {"COSMOS_SIM_DURATION": "3"},
        "secret_env": {"HF_TOKEN": "hf_secret_value"},
        "workdir": "/workspace",
        "engine_args": ["--gpus", "all", "--ipc=host"],
    }
    base.update(extra)
    return base


def test_run_argv_is_detached_named_labelled_and_mounted():
    argv = cosmos_container.run_argv(params())
    assert argv[:4] == ["run", "-d", "--name", "cosmos-run-1"]
    assert argv[argv.index("cosmos.run_id=run-1") - 1 :][:2] == ["--label", "cosmos.run_id=run-1"]
    assert "/h/in:/cosmos/inputs:ro" in argv
    image_at = argv.index("cosmos:1")
    assert argv[image_at + 1 :] == ["torchrun", "--nproc_per_node=2", "x.py"]
    assert argv[image_at - 3 : image_at] == ["--gpus", "all", "--ipc=host"]


def test_environment_values_never_reach_the_command_line():
    argv = cosmos_container.run_argv(params())
    assert "hf_secret_value" not in " ".join(argv)
    assert "3" not in argv
    assert argv[argv.index("COSMOS_SIM_DURATION") - 1 :][:2] == ["-e", "COSMOS_SIM_DURATION"]
    assert "HF_TOKEN" in argv


def test_host_without_gpu_flags_gets_none():
    argv = cosmos_container.run_argv(params(engine_args=[]))
    assert "--gpus" not in argv
