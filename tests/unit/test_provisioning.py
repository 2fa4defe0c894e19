"""Setup and health on the driver side: which stages run, what each host's setup did, where
the token comes from, and the GPU counts health leaves for the scheduler. The playbooks are
faked at the AnsibleAdapter boundary: a fake adapter records each PlaybookCall."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome, TaskFailure
from cosmos_driver.cli import program
from cosmos_driver.errors import ConfigurationError
from cosmos_driver.provisioning import (
    STAGES,
    HostFacts,
    Secrets,
    host_setups,
    run_setup,
    selected_stages,
)
from cosmos_driver.tasks import common
from cosmos_driver.tasks.jobs import _gpu_counts


class FakeAdapter:
    """Records every PlaybookCall and answers each with the outcome it was given."""

    def __init__(self, scratch_dir: Path, outcome: PlaybookOutcome | None = None) -> None:
        self.scratch_dir = scratch_dir
        self.outcome = outcome or PlaybookOutcome("successful", 0, recap={"h1": {"changed": 0}})
        self.calls: list[PlaybookCall] = []

    def run(
        self,
        call: PlaybookCall,
        log_path: Path | None = None,
        cancel: Any = None,
        on_task: Any = None,
    ):
        self.calls.append(call)
        if on_task:
            on_task("Cosmos setup | preflight: Preflight | Read the container engine")
        return self.outcome


@pytest.fixture
def adapter(tmp_path: Path) -> FakeAdapter:
    return FakeAdapter(tmp_path / "scratch")


@pytest.fixture
def no_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def failure(host: str, stage: str, unreachable: bool = False) -> TaskFailure:
    return TaskFailure(host, "some task", f"{stage} broke", unreachable, f"Cosmos setup | {stage}")


# --- run_setup: the PlaybookCall ------------------------------------------------------------


def test_setup_passes_no_bootstrap_by_default(adapter, no_token_env):
    run_setup(adapter, "all", None, Secrets.gather())
    [call] = adapter.calls
    assert call.playbook == "setup.yml"
    assert call.limit == "all"
    assert "cosmos_checkpoints_bootstrap" not in call.extravars
    assert call.tags is None


def test_setup_asks_for_a_bootstrap_download_when_told(adapter, no_token_env):
    run_setup(adapter, "lab-1", "checkpoints", Secrets.gather(), bootstrap_checkpoints=True)
    [call] = adapter.calls
    assert call.extravars == {"cosmos_checkpoints_bootstrap": True}
    assert call.tags == "checkpoints"
    assert call.limit == "lab-1"


def test_setup_hands_the_token_to_the_secret_channel_not_to_extravars(
    adapter, monkeypatch, tmp_path
):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    vault = tmp_path / "vault.yml"
    vault.write_text("$ANSIBLE_VAULT;1.1;AES256\n")
    run_setup(adapter, "all", None, Secrets.gather([str(vault)]), bootstrap_checkpoints=True)
    [call] = adapter.calls
    assert call.secrets == {"hf_token": "hf_secret_value"}
    assert call.vars_files == (vault.resolve(),)
    assert "hf_secret_value" not in json.dumps(call.extravars)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[FakeAdapter]:
    """The FakeAdapters `invoke setup` builds in place of AnsibleAdapter."""
    adapters: list[FakeAdapter] = []

    def fake_adapter(inventory: Path, scratch_dir: Path) -> FakeAdapter:
        adapters.append(FakeAdapter(scratch_dir))
        return adapters[-1]

    monkeypatch.setattr(common, "AnsibleAdapter", fake_adapter)
    return adapters


def run_setup_task(tmp_path: Path, *options: str) -> None:
    """`cosmos setup OPTIONS --json` on a one-host inventory, parsed by the real Program."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {hosts: {h1: {}}}\n")
    argv = ["cosmos", "setup", *options, "--json", "--inventory", str(inventory)]
    program.run([*argv, "--state-dir", str(tmp_path / "state")], exit=False)


def test_setup_task_flag_reaches_the_playbook_call(tmp_path, made, no_token_env, capsys):
    run_setup_task(tmp_path, "--bootstrap-checkpoints")
    [adapter] = made
    [call] = adapter.calls
    assert call.extravars == {"cosmos_checkpoints_bootstrap": True}
    [host] = json.loads(capsys.readouterr().out)["hosts"]
    assert host["host"] == "h1" and host["ok"]


def test_setup_task_without_the_flag_asks_for_no_bootstrap(tmp_path, made, no_token_env):
    run_setup_task(tmp_path)
    [adapter] = made
    assert adapter.calls[0].extravars == {}


# --- selected_stages ------------------------------------------------------------------------


def test_all_stages_by_default():
    assert selected_stages(None) == STAGES
    assert selected_stages("") == STAGES


def test_stages_come_in_setup_order_whatever_the_order_asked():
    assert selected_stages(" health, preflight ") == ("preflight", "health")


def test_an_unknown_stage_is_named():
    with pytest.raises(ConfigurationError, match=r"--tags checkpoint,gpu: unknown stage"):
        selected_stages("image,checkpoint,gpu")


# --- host_setups ----------------------------------------------------------------------------


def test_every_stage_ok_and_the_health_report_attached():
    outcome = PlaybookOutcome(
        "successful",
        0,
        data={"cosmos_health": {"h1": {"ready": True, "gpu_count": 2}}},
        recap={"h1": {"changed": 3}},
    )
    [report] = host_setups(outcome, STAGES)
    assert report.ok
    assert report.stages == dict.fromkeys(STAGES, "ok")
    assert report.changed == 3
    assert report.health == {"ready": True, "gpu_count": 2}


def test_the_failed_stage_is_named_and_the_later_ones_did_not_run():
    outcome = PlaybookOutcome(
        "failed", 2, failures=[failure("h1", "image")], recap={"h1": {"changed": 1}, "h2": {}}
    )
    reports = {r.host: r for r in host_setups(outcome, STAGES)}
    h1 = reports["h1"]
    assert not h1.ok
    assert h1.failed_stage == "image"
    assert h1.message == "image broke"
    assert h1.stages == {
        "preflight": "ok",
        "image": "failed",
        "checkpoints": "not run",
        "health": "not run",
    }
    assert reports["h2"].ok
    assert reports["h2"].stages == dict.fromkeys(STAGES, "ok")


def test_an_unreachable_host_says_so_even_when_absent_from_the_recap():
    outcome = PlaybookOutcome("failed", 4, failures=[failure("h3", "preflight", unreachable=True)])
    [report] = host_setups(outcome, STAGES)
    assert report.host == "h3"
    assert report.stages["preflight"] == "unreachable"
    assert report.stages["health"] == "not run"
    assert report.changed == 0
    assert report.to_json()["ok"] is False


def test_only_the_selected_stages_are_reported():
    outcome = PlaybookOutcome("failed", 2, failures=[failure("h1", "checkpoints")])
    [report] = host_setups(outcome, ("checkpoints", "health"))
    assert report.stages == {"checkpoints": "failed", "health": "not run"}


# --- Secrets.gather -------------------------------------------------------------------------


def test_the_token_comes_from_hf_token(monkeypatch, no_token_env):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    secrets = Secrets.gather()
    assert secrets.for_call() == {"hf_token": "hf_from_env"}
    assert "hf_from_env" not in repr(secrets)


def test_the_older_token_variable_is_read_too(monkeypatch, no_token_env):
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_older_name")
    assert Secrets.gather().hf_token == "hf_older_name"


def test_no_token_means_no_secret_for_the_call(no_token_env):
    assert Secrets.gather().for_call() == {}


def test_a_missing_vault_file_is_named(tmp_path, no_token_env):
    missing = tmp_path / "nope" / "vault.yml"
    with pytest.raises(ConfigurationError, match=r"vault file .*nope/vault\.yml does not exist"):
        Secrets.gather([str(missing)])


# --- HostFacts and the scheduler's GPU counts -----------------------------------------------


def test_gpu_count_is_what_health_saw(tmp_path):
    facts = HostFacts(tmp_path)
    facts.save({"h1": {"gpu_count": 2}, "h2": {"gpu_count": 0}})
    assert facts.gpu_count("h1") == 2
    assert facts.gpu_count("h2") is None  # no GPU seen: the inventory decides
    assert facts.gpu_count("h3") is None  # never checked


def test_an_unreadable_host_fact_is_ignored(tmp_path):
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "h1.json").write_text("{not json")
    assert HostFacts(tmp_path).gpu_count("h1") is None


def test_gpu_counts_drop_to_what_health_saw_but_never_rise(tmp_path):
    facts = HostFacts(tmp_path)
    facts.save({"few": {"gpu_count": 2}, "many": {"gpu_count": 16}})
    hosts = {"few": 8, "many": 8, "unchecked": 1}
    assert _gpu_counts(hosts, facts) == {"few": 2, "many": 8, "unchecked": 1}


def test_setup_progress_logs_each_stage_once_and_skips_argument_checks(caplog):
    from cosmos_driver.tasks.provision import _StageLogger

    logger = _StageLogger()
    with caplog.at_level("INFO", logger="cosmos_driver.tasks.provision"):
        for text in (
            "Cosmos setup | preflight: Preflight | Read the container engine",
            "Cosmos setup | preflight: Preflight | Read the NVIDIA driver version",
            "Cosmos setup | image: Validating arguments against arg spec 'main'",
            "Cosmos setup | health: Health | Read the GPUs",
        ):
            logger(text)
    assert [r.getMessage() for r in caplog.records] == [
        "Cosmos setup | preflight",
        "Cosmos setup | health",
    ]
