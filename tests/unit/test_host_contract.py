"""The host contract: names spelled once in Python, passed to every phase, matched by the
job role's defaults and by the modules on the host (which cannot import the driver)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from cosmos_driver import host_contract
from cosmos_driver.ansible_adapter import PlaybookOutcome
from cosmos_driver.model import Job
from cosmos_driver.resume import FoundContainers, find_batch_containers
from tests.fakes.adapter import HOST, PHASES, FakeAdapter, run_job

ROOT = Path(__file__).resolve().parents[2]
# Before and after the move of the Ansible content into a collection.
ROLE_PLACES = (
    "roles/cosmos_job",
    "cosmos_driver/ansible_collections/cosmos/driver/roles/cosmos_job",
)


def job_role() -> Path:
    found = [ROOT / place for place in ROLE_PLACES if (ROOT / place).is_dir()]
    assert len(found) == 1, found
    return found[0]


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
    assert len(vars_) == 4
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


@pytest.mark.parametrize(
    ("place", "name", "value"),
    [
        ("library/cosmos_container.py", "EXIT_FILE", host_contract.EXIT_FILE),
        ("module_utils/cosmos_staging.py", "SPEC_NAME", host_contract.SPEC_FILE),
        ("module_utils/cosmos_staging.py", "BUNDLE_NAME", host_contract.BUNDLE_NAME),
    ],
)
def test_the_modules_on_the_host_spell_the_contracts_names(place, name, value):
    candidates = [p for p in ROOT.rglob(place) if ".venv" not in p.parts]
    assert candidates, place
    assert {module_constant(p, name) for p in candidates} == {value}


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
