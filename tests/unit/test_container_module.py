"""The container module's argv builders (its module_utils, where engine command lines are
spelled); its actions over a fake engine (the Engine's call and inspect methods); and the
module file itself, which dispatches to them."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from ansible_collections.cosmos.driver.plugins.module_utils import (
    cosmos_engine_setup as engine_setup,
)
from ansible_collections.cosmos.driver.plugins.module_utils import (
    cosmos_job_container as job_container,
)

from cosmos_driver.content import COLLECTION

MODULE = COLLECTION / "plugins" / "modules" / "cosmos_container.py"
spec = importlib.util.spec_from_file_location("cosmos_container", MODULE)
cosmos_container = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cosmos_container)


def test_the_module_dispatches_every_documented_action():
    doc = yaml.safe_load(cosmos_container.DOCUMENTATION)
    assert sorted(cosmos_container.ACTIONS) == sorted(doc["options"]["action"]["choices"])
    assert set(cosmos_container.REQUIRED) <= set(cosmos_container.ACTIONS)


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
    argv = job_container.run_argv(params())
    assert argv[:4] == ["run", "-d", "--name", "cosmos-run-1"]
    assert argv[argv.index("cosmos.run_id=run-1") - 1 :][:2] == ["--label", "cosmos.run_id=run-1"]
    assert "/h/in:/cosmos/inputs:ro" in argv
    image_at = argv.index("cosmos:1")
    assert argv[image_at + 1 :] == ["torchrun", "--nproc_per_node=2", "x.py"]
    assert argv[image_at - 3 : image_at] == ["--gpus", "all", "--ipc=host"]


def test_environment_values_never_reach_the_command_line():
    argv = job_container.run_argv(params())
    assert "hf_secret_value" not in " ".join(argv)
    assert "3" not in argv
    assert argv[argv.index("COSMOS_SIM_DURATION") - 1 :][:2] == ["-e", "COSMOS_SIM_DURATION"]
    assert "HF_TOKEN" in argv


def test_host_without_gpu_flags_gets_none():
    argv = job_container.run_argv(params(engine_args=[]))
    assert "--gpus" not in argv


# --- collect: the end of a container's life in one module run -----------------------------

NAME = "cosmos-run-1"
STARTED_AT = "2025-01-02T03:04:05Z"
FINISHED_AT = "2025-01-02T03:14:05Z"


class ContainerEngine:
    """Stands in for the module's Engine: one container kept in memory, the argv of every
    call recorded; `logs` goes to a stand-in CLI, since the module streams it to a file."""

    def __init__(self, cli: Path, status: str | None) -> None:
        self.cli = str(cli)
        self.env: dict[str, str] = {}
        self.calls: list[list[str]] = []
        self.state = None
        if status is not None:
            running = status == "running"
            self.state = {
                "Id": "c0ffee",
                "State": {
                    "Status": status,
                    "Running": running,
                    "ExitCode": 0 if running else 3,
                    "StartedAt": STARTED_AT,
                    "FinishedAt": "0001-01-01T00:00:00Z" if running else FINISHED_AT,
                    "OOMKilled": False,
                },
            }

    def inspect_container(self, name):
        return self.state if name == NAME else None

    def call(self, args, check=True, timeout=None):
        self.calls.append(list(args))
        if args[0] == "stop":  # SIGTERM: the job exits 143
            self.state["State"].update(
                Status="exited", Running=False, ExitCode=143, FinishedAt=FINISHED_AT
            )
        elif args[0] == "rm":
            self.state = None
        return SimpleNamespace(returncode=0, stdout="", stderr="")


class ModuleFailed(Exception):
    pass


def fail_json(**result):
    raise ModuleFailed(result["msg"])


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory on the host, with the outputs the job wrote."""
    outputs = tmp_path / "run" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "output.mp4").write_bytes(b"video")
    (outputs / "output.txt").write_text("prompt")
    (outputs / "frames").mkdir()  # a folder is not an output to fetch
    (tmp_path / "run" / "logs").mkdir()
    return tmp_path / "run"


@pytest.fixture
def engine_cli(tmp_path: Path) -> Path:
    """A stand-in engine CLI whose `logs NAME` prints that container's log."""
    cli = tmp_path / "engine"
    cli.write_text('#!/bin/sh\necho "log of $2"\n')
    cli.chmod(0o755)
    return cli


def collect(engine: ContainerEngine, run_dir: Path, **extra) -> dict:
    params = {
        "engine": "docker",
        "name": NAME,
        "grace": 7,
        "dest": str(run_dir / "logs" / "container.log"),
        "exit_name": "container-exit.json",
        "list_dir": str(run_dir / "outputs"),
        "bundle": None,
        **extra,
    }
    module = SimpleNamespace(params=params, check_mode=False, fail_json=fail_json)
    return job_container.action_collect(module, engine)


def saved_exit(run_dir: Path) -> dict:
    return json.loads((run_dir / "logs" / "container-exit.json").read_text())


def test_collect_of_a_running_container_stops_saves_and_removes_it(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "running")
    result = collect(engine, run_dir)

    # Stopped with the grace first, so the log and the exit saved are the final ones.
    assert engine.calls == [["stop", "-t", "7", NAME], ["rm", "-f", NAME]]
    assert (run_dir / "logs" / "container.log").read_text() == f"log of {NAME}\n"
    assert saved_exit(run_dir) == {
        "exit_code": 143,
        "started_at": STARTED_AT,
        "finished_at": FINISHED_AT,
        "oom_killed": False,
    }
    assert engine.state is None
    assert result["changed"] is True
    assert result["exists"] is True
    assert result["stopped"] is True
    outputs = run_dir / "outputs"
    assert result["files"] == [str(outputs / "output.mp4"), str(outputs / "output.txt")]
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == [
        "container-exit.json",
        "container.log",
    ]  # no temp file left


def test_collect_of_an_exited_container_keeps_its_exit_without_a_stop(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "exited")
    result = collect(engine, run_dir)

    assert engine.calls == [["rm", "-f", NAME]]
    assert saved_exit(run_dir)["exit_code"] == 3
    assert (run_dir / "logs" / "container.log").exists()
    assert (result["changed"], result["exists"], result["stopped"]) == (True, True, False)
    assert len(result["files"]) == 2


def test_collect_of_a_gone_container_lists_the_outputs_and_keeps_an_earlier_exit(
    run_dir, engine_cli
):
    # An earlier collect saved the exit and removed the container, then lost the host.
    earlier = {"exit_code": 0, "started_at": STARTED_AT, "finished_at": FINISHED_AT}
    (run_dir / "logs" / "container-exit.json").write_text(json.dumps(earlier))
    engine = ContainerEngine(engine_cli, None)

    result = collect(engine, run_dir)

    assert engine.calls == []
    assert saved_exit(run_dir) == earlier
    assert not (run_dir / "logs" / "container.log").exists()
    assert (result["changed"], result["exists"], result["stopped"]) == (False, False, False)
    assert [Path(f).name for f in result["files"]] == ["output.mp4", "output.txt"]


def test_collect_bundles_the_outputs_and_logs_for_one_fetch(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "exited")
    bundle = run_dir / "collected.tar"

    result = collect(engine, run_dir, bundle=str(bundle))

    assert result["bundle"] == str(bundle)
    with tarfile.open(bundle) as archive:
        assert sorted(archive.getnames()) == [
            "logs/container-exit.json",
            "logs/container.log",
            "outputs/output.mp4",
            "outputs/output.txt",
        ]
        log = archive.extractfile("logs/container.log").read()
    assert log == f"log of {NAME}\n".encode()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".bundle.")]
    assert result["bundle_size"] == bundle.stat().st_size
    assert result["bundle_sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()


def test_collect_without_an_outputs_folder_lists_nothing(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "exited")
    assert collect(engine, run_dir, list_dir=str(run_dir / "missing"))["files"] == []
    assert collect(ContainerEngine(engine_cli, None), run_dir, list_dir=None)["files"] == []


def test_collect_fails_when_the_log_cannot_be_saved(run_dir, tmp_path):
    broken_cli = tmp_path / "broken-engine"
    broken_cli.write_text("#!/bin/sh\nexit 1\n")
    broken_cli.chmod(0o755)
    engine = ContainerEngine(broken_cli, "exited")

    with pytest.raises(ModuleFailed, match=f"docker logs {NAME} failed"):
        collect(engine, run_dir)
    # Nothing is removed before its log is saved.
    assert engine.state is not None
    assert list((run_dir / "logs").iterdir()) == []


def test_run_once_argv_is_removed_after_and_keeps_env_values_off_the_command_line():
    argv = engine_setup.run_once_argv(
        params(command=["nvidia-smi", "-L"], engine_args=["--gpus", "all"]), "cosmos-once-1"
    )
    assert argv[:4] == ["run", "--rm", "--name", "cosmos-once-1"]
    assert "-d" not in argv
    assert "hf_secret_value" not in " ".join(argv)
    assert argv[-5:] == ["--gpus", "all", "cosmos:1", "nvidia-smi", "-L"]


DOCKER_INFO = {
    "ServerVersion": "27.3.1",
    "Runtimes": {
        "io.containerd.runc.v2": {"path": "runc"},
        "nvidia": {"path": "nvidia-container-runtime"},
    },
    "DefaultRuntime": "runc",
    "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
}


def test_docker_info_names_the_nvidia_runtime():
    info = engine_setup.docker_info(DOCKER_INFO)
    assert info == {
        "version": "27.3.1",
        "runtimes": ["io.containerd.runc.v2", "nvidia"],
        "default_runtime": "runc",
        "rootless": False,
    }
    rootless = dict(DOCKER_INFO, SecurityOptions=["name=rootless"], Runtimes=None)
    assert engine_setup.docker_info(rootless)["rootless"] is True
    assert engine_setup.docker_info(rootless)["runtimes"] == []


def test_podman_info_reads_its_runtime_and_rootless_mode():
    info = engine_setup.podman_info(
        {
            "host": {"ociRuntime": {"name": "crun"}, "security": {"rootless": True}},
            "version": {"Version": "4.9.3"},
        }
    )
    assert info == {
        "version": "4.9.3",
        "runtimes": ["crun"],
        "default_runtime": "crun",
        "rootless": True,
    }


class Proc:
    def __init__(self, returncode=0, stdout="", stderr=""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


class FakeEngine:
    """Stands in for the module's Engine class (our boundary), answering `info` once."""

    def __init__(self, cli, answer):
        self.cli, self.answer, self.env, self.calls = cli, answer, {}, []

    def call(self, args, check=True, timeout=None):
        self.calls.append(args)
        return self.answer


class FakeModule:
    def __init__(self, engine="docker"):
        self.params = {"engine": engine, "timeout": 5}


def test_engine_info_reports_a_missing_engine_without_failing():
    engine = FakeEngine(None, None)
    result = engine_setup.action_engine_info(FakeModule("podman"), engine)
    assert result["installed"] is False and result["running"] is False
    assert result["error"] == "podman: command not found"
    assert engine.calls == []


def test_engine_info_reports_a_daemon_that_does_not_answer():
    answer = Proc(1, '{"ServerErrors": ["Cannot connect"]}', "Cannot connect to the Docker daemon")
    result = engine_setup.action_engine_info(FakeModule(), FakeEngine("/usr/bin/x", answer))
    assert result["installed"] is True and result["running"] is False
    assert "Cannot connect" in result["error"]
    assert result["nvidia_runtime"] is False


def test_engine_info_of_a_running_engine_with_the_nvidia_runtime():
    engine = FakeEngine("/usr/bin/x", Proc(0, json.dumps(DOCKER_INFO)))
    result = engine_setup.action_engine_info(FakeModule(), engine)
    assert engine.calls == [["info", "--format", "{{json .}}"]]
    assert result["running"] is True and result["nvidia_runtime"] is True
    assert result["version"] == "27.3.1" and result["error"] == ""


def wait(engine: ContainerEngine, run_dir: Path, **extra) -> dict:
    params = {
        "engine": "docker",
        "name": NAME,
        "grace": 7,
        "timeout": 5,
        "tail": 0,
        "collect_when_done": True,
        "dest": str(run_dir / "logs" / "container.log"),
        "exit_name": "container-exit.json",
        "list_dir": str(run_dir / "outputs"),
        "bundle": str(run_dir / "collected.tar"),
        **extra,
    }
    module = SimpleNamespace(params=params, check_mode=False, fail_json=fail_json)
    return job_container.action_wait(module, engine)


def test_wait_collects_an_exited_container_in_the_same_run(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "exited")

    result = wait(engine, run_dir)

    assert (result["finished"], result["exit_code"], result["collected"]) == (True, 3, True)
    assert engine.calls == [["wait", NAME], ["rm", "-f", NAME]]
    assert saved_exit(run_dir)["exit_code"] == 3
    assert result["bundle"] == str(run_dir / "collected.tar")
    assert [Path(f).name for f in result["files"]] == ["output.mp4", "output.txt"]


def test_wait_leaves_a_running_container_alone_when_it_does_not_exit(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "running")

    result = wait(engine, run_dir)

    assert result["finished"] is False
    assert "collected" not in result
    assert engine.state is not None  # not stopped, not removed
    assert not (run_dir / "collected.tar").exists()


def test_wait_without_collect_when_done_only_waits(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "exited")

    result = wait(engine, run_dir, collect_when_done=False)

    assert result["finished"] is True
    assert "collected" not in result
    assert engine.state is not None


def test_wait_collects_a_container_that_is_gone(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, None)

    result = wait(engine, run_dir)

    assert (result["exists"], result["collected"]) == (False, True)
    assert engine.calls == []
    assert (run_dir / "collected.tar").exists()


def test_wait_that_collects_reads_the_log_tail_from_the_saved_log(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "exited")

    result = wait(engine, run_dir, tail=5)

    assert result["log_tail"] == [f"log of {NAME}"]
    assert ["logs", "--tail", "5", NAME] not in engine.calls  # one engine call fewer


def test_wait_that_does_not_collect_asks_the_engine_for_the_tail(run_dir, engine_cli):
    engine = ContainerEngine(engine_cli, "running")

    wait(engine, run_dir, tail=5)

    assert ["logs", "--tail", "5", NAME] in engine.calls


# --- run: stage, then start, in one module run ---------------------------------------------


def start(engine: ContainerEngine, host: Path, names: list[str]) -> dict:
    stage = {
        "run_dir": str(host / "runs" / "run-1"),
        "spec": '{"seed": 1}',
        "inputs_dir": str(host / "inputs"),
        "input_names": names,
        "folders": [],
        "parent_outputs": None,
    }
    module = SimpleNamespace(
        params=params(after=[], timeout=5, stage=stage), check_mode=False, fail_json=fail_json
    )
    return job_container.action_run(module, engine)


def test_run_stages_and_starts_in_one_module_run_when_the_host_holds_the_inputs(
    tmp_path, engine_cli
):
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "aaa.mp4").write_bytes(b"video")
    engine = ContainerEngine(engine_cli, None)

    result = start(engine, tmp_path, ["aaa.mp4"])

    assert (result["started"], result["missing_inputs"]) == (True, [])
    assert (tmp_path / "runs" / "run-1" / "spec.json").read_text() == '{"seed": 1}'
    assert [call[0] for call in engine.calls] == ["run"]


def test_run_starts_nothing_while_an_input_is_missing(tmp_path, engine_cli):
    engine = ContainerEngine(engine_cli, None)

    result = start(engine, tmp_path, ["aaa.mp4"])

    assert (result["started"], result["missing_inputs"]) == (False, ["aaa.mp4"])
    assert engine.calls == []
    assert (tmp_path / "runs" / "run-1" / "spec.json").exists()  # staged all the same


def test_run_reattaches_to_an_existing_container_without_staging(tmp_path, engine_cli):
    outputs = tmp_path / "runs" / "run-1" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "output.mp4").write_bytes(b"being written")
    engine = ContainerEngine(engine_cli, "running")

    result = start(engine, tmp_path, ["aaa.mp4"])

    assert (result["started"], result["reattached"]) == (True, True)
    assert (outputs / "output.mp4").exists()  # a running job's outputs are left alone
    assert engine.calls == []


def test_collect_saves_the_exit_under_the_name_it_is_given(run_dir, engine_cli):
    """The exit file's name comes from the host contract through the role, not the module."""
    collect(ContainerEngine(engine_cli, "exited"), run_dir, exit_name="exit-of-run.json")
    assert json.loads((run_dir / "logs" / "exit-of-run.json").read_text())["exit_code"] == 3
    assert not (run_dir / "logs" / "container-exit.json").exists()
