"""The host contract: names spelled once in Python, passed to every phase, matched by the
job role's defaults and by the modules on the host (which cannot import the driver)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from cosmos_driver import host_contract
from cosmos_driver.ansible_adapter import PlaybookOutcome
from cosmos_driver.content import COLLECTION
from cosmos_driver.model import Job
from cosmos_driver.resume import FoundContainers, find_batch_containers
from tests.fakes.adapter import HOST, PHASES, FakeAdapter, run_job


def job_role() -> Path:
    return COLLECTION / "roles/cosmos_job"


def module_constant(path: Path, name: str) -> str:
    tree = ast.parse(path.read_text())
    values = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert len(values) == 1, (path, name, values)
    return values[0]


def test_the_job_roles_defaults_match_the_contract():
    role = job_role()
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    defaults |= yaml.safe_load((role / "vars/main.yml").read_text())
    vars_ = host_contract.role_vars("RUN", "BATCH", "HOST")
    assert len(vars_) == 6
    names = {
        "{{ cosmos_job_run_id }}": "RUN",
        "{{ cosmos_job_batch_id }}": "BATCH",
        "{{ inventory_hostname }}": "HOST",
    }

    def rendered(value):
        if isinstance(value, dict):
            return {k: rendered(v) for k, v in value.items()}
        for template, name in names.items():
            value = value.replace(template, name)
        return value

    for name, value in vars_.items():
        assert rendered(defaults[name]) == value, name


STAGING = COLLECTION / "plugins/module_utils/cosmos_staging.py"
CONTAINER_MODULE = COLLECTION / "plugins/modules/cosmos_container.py"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SPEC_NAME", host_contract.SPEC_FILE),
        ("BUNDLE_NAME", host_contract.BUNDLE_NAME),
        ("EXIT_NAME", host_contract.EXIT_FILE),
    ],
)
def test_staging_defaults_spell_the_contracts_names(name, value):
    assert module_constant(STAGING, name) == value


def test_the_container_modules_defaults_spell_the_contracts_names():
    """The names arrive as parameters; the module's defaults (for a play run by hand) match."""
    doc = yaml.safe_load(module_constant(CONTAINER_MODULE, "DOCUMENTATION"))
    stage = doc["options"]["stage"]["suboptions"]
    assert stage["spec_name"]["default"] == host_contract.SPEC_FILE
    assert stage["bundle_name"]["default"] == host_contract.BUNDLE_NAME
    assert stage["exit_name"]["default"] == host_contract.EXIT_FILE
    assert doc["options"]["exit_name"]["default"] == host_contract.EXIT_FILE


def test_found_containers_are_matched_by_their_run_id_label():
    container = {"name": "renamed-by-hand", "labels": {host_contract.RUN_ID_LABEL: "r1"}}
    assert host_contract.run_id_of(container) == "r1"
    assert host_contract.run_id_of({"name": "cosmos-r2", "labels": {}}) == "r2"
    assert host_contract.run_id_of({"name": "other", "labels": {}}) is None


def test_every_phase_gets_the_contracts_names(store, mp4, tmp_path):
    color = tmp_path / "c.mp4"
    color.write_bytes(b"color")
    job = Job("j", "a prompt", {"color": color}, {"edge": 1.0})
    adapter = FakeAdapter(store, mp4)
    run_job(store, job, adapter)
    assert adapter.playbooks == PHASES
    for call in adapter.calls:
        run_id = call.extravars["cosmos_job_run_id"]
        assert call.extravars["cosmos_job_container_name"] == f"cosmos-{run_id}"
        assert call.extravars["cosmos_job_bundle_name"] == "collected.tar"
        assert call.extravars["cosmos_job_log_name"] == "container.log"
        assert call.extravars["cosmos_job_exit_name"] == "container-exit.json"
        assert call.extravars["cosmos_job_spec_name"] == "spec.json"
        assert call.extravars["cosmos_job_labels"] == {
            "cosmos.run_id": run_id,
            "cosmos.batch_id": call.extravars["cosmos_job_batch_id"],
            "cosmos.host": HOST,
        }


@pytest.mark.parametrize(
    ("container", "run_id"),
    [
        ({"name": "cosmos-b.a-1"}, "b.a-1"),
        ({"name": "renamed", "labels": {"cosmos.run_id": "b.a-1"}}, "b.a-1"),
        ({"name": "someone-else"}, None),
    ],
)
def test_a_found_container_is_known_by_its_label_else_by_its_name(container, run_id):
    assert host_contract.run_id_of(container) == run_id


def test_resume_skips_containers_that_are_no_runs():
    class Finder:
        def run(self, call, **_):
            containers = [{"name": "cosmos-b.a-1"}, {"name": "stray"}]
            return PlaybookOutcome("successful", 0, {"containers": {HOST: containers}})

    found = find_batch_containers(Finder(), "b")
    assert found == FoundContainers({"b.a-1": HOST}, frozenset())
