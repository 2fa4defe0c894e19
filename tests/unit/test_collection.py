"""The cosmos.driver collection stands on its own: ansible-galaxy builds and installs it,
ansible-doc documents every module and plugin, and the checkout's ansible.cfg is the
driver's plus the collections path."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cosmos_driver.content import ANSIBLE_CFG, COLLECTION, COLLECTIONS_PATH

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# ansible-doc's plugin type for each plugins/ folder that holds documented plugins.
DOC_TYPES = {"modules": "module", "lookup": "lookup", "filter": "filter"}


def _plugins() -> list[tuple[str, str]]:
    """(ansible-doc type, name) of every module, lookup and filter the collection ships."""
    found = []
    for folder, kind in DOC_TYPES.items():
        for path in sorted((COLLECTION / "plugins" / folder).iterdir()):
            if (kind == "filter" and path.suffix == ".yml") or (
                kind != "filter" and path.suffix == ".py"
            ):
                found.append((kind, path.stem))
    return found


def _ansible(tool: str, *args: str, cwd: Path, collections: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_every_module_and_action_has_a_module_doc():
    """An action's docs live in plugins/modules/<name>.py, where ansible-doc looks."""
    actions = {p.stem for p in (COLLECTION / "plugins/action").glob("*.py")}
    modules = {p.stem for p in (COLLECTION / "plugins/modules").glob("*.py")}
    assert actions, "no action plugins found"
    assert actions <= modules


def test_plugins_are_found():
    kinds = {kind for kind, _ in _plugins()}
    assert kinds == set(DOC_TYPES.values())


@pytest.mark.parametrize(("kind", "name"), _plugins(), ids=lambda v: str(v))
def test_ansible_doc_documents(kind, name, tmp_path):
    done = _ansible("ansible-doc", "--json", "-t", kind, f"cosmos.driver.{name}",
                    cwd=tmp_path, collections=COLLECTIONS_PATH)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[ERROR]" not in done.stderr and "[WARNING]" not in done.stderr, done.stderr
    doc = json.loads(done.stdout)[f"cosmos.driver.{name}"]["doc"]
    assert doc["short_description"]
    assert doc["description"]


def test_galaxy_builds_a_collection_that_installs_and_documents(tmp_path):
    built = _ansible("ansible-galaxy", "collection", "build", str(COLLECTION), "--output-path",
                     str(tmp_path), cwd=tmp_path, collections=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr
    tarballs = list(tmp_path.glob("cosmos-driver-*.tar.gz"))
    assert len(tarballs) == 1, built.stdout
    with tarfile.open(tarballs[0]) as tar:
        names = tar.getnames()
    assert "roles/cosmos_job/tasks/main.yml" in names
    assert "plugins/modules/cosmos_container.py" in names
    assert "playbooks/setup.yml" in names
    assert not [n for n in names if "__pycache__" in n]
    target = tmp_path / "collections"
    installed = _ansible("ansible-galaxy", "collection", "install", str(tarballs[0]),
                         "-p", str(target), cwd=tmp_path, collections=target)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    doc = _ansible("ansible-doc", "-t", "role", "cosmos.driver.cosmos_job",
                   cwd=tmp_path, collections=target)  # fmt: skip
    assert doc.returncode == 0, doc.stderr
    assert str(target) in doc.stdout


def _config(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return {section: dict(parser[section]) for section in parser.sections()}


def test_checkout_ansible_cfg_is_the_drivers_plus_collections_path():
    checkout = _config(ROOT / "ansible.cfg")
    assert checkout["defaults"].pop("collections_path") == "./cosmos_driver"
    assert checkout == _config(ANSIBLE_CFG)
