"""Host-wide settings are set once, as the defaults of the role cosmos_host: every role of the
collection depends on it, no role repeats a host-wide default, and any inventory variable
(a group's `vars:` included, which a playbook's group_vars/all used to override) wins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from cosmos_driver.content import COLLECTION, COLLECTIONS_PATH

ROLES = COLLECTION / "roles"
HOST_DEFAULTS = yaml.safe_load((ROLES / "cosmos_host/defaults/main.yml").read_text())
DEPENDENT_ROLES = sorted(p.name for p in ROLES.iterdir() if p.name != "cosmos_host")

PLAY = """
- name: Show what a host ends up with
  hosts: all
  connection: local
  gather_facts: false
  roles:
    - role: cosmos.driver.cosmos_host
  tasks:
    - name: Write the settings
      vars:
        seen:
          engine: "{{ cosmos_engine }}"
          remote_root: "{{ cosmos_remote_root }}"
          checkpoint_dir: "{{ cosmos_checkpoint_dir }}"
      ansible.builtin.copy:
        content: "{{ seen | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def test_there_are_roles_to_check():
    assert len(DEPENDENT_ROLES) == 6, DEPENDENT_ROLES


def test_every_role_depends_on_cosmos_host():
    for role in DEPENDENT_ROLES:
        meta = yaml.safe_load((ROLES / role / "meta/main.yml").read_text())
        names = [d["role"] if isinstance(d, dict) else d for d in meta["dependencies"]]
        assert names == ["cosmos.driver.cosmos_host"], role


def test_no_role_repeats_a_host_wide_default():
    """`cosmos_engine | default('docker')` in a role would be a second place for the default."""
    assert len(HOST_DEFAULTS) > 10
    spelled = re.compile(r"\b(" + "|".join(HOST_DEFAULTS) + r")\s*\|\s*default\((?!'', true)")
    found = []
    for path in sorted(COLLECTION.rglob("*.yml")):
        if path.parent.name != "molecule" and "cosmos_host" not in path.parts:
            found += [f"{path.name}: {m.group(0)}" for m in spelled.finditer(path.read_text())]
    assert found == []


def test_argument_spec_mirrors_the_defaults():
    spec = yaml.safe_load((ROLES / "cosmos_host/meta/argument_specs.yml").read_text())
    assert set(spec["argument_specs"]["main"]["options"]) == set(HOST_DEFAULTS)


def _play(tmp_path: Path, inventory: dict) -> dict:
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "seen.json"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "inventory.yml",
         "play.yml", "-e", f"out={out}", "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    return json.loads(out.read_text())


def test_defaults_apply_when_the_inventory_sets_nothing(tmp_path):
    seen = _play(tmp_path, {"all": {"hosts": {"h1": {}}}})
    assert seen == {
        "engine": "docker",
        "remote_root": "/var/lib/cosmos",
        "checkpoint_dir": "/var/lib/cosmos/checkpoints",
    }


def test_a_group_variable_in_the_inventory_overrides_the_default(tmp_path):
    group = {"hosts": {"h1": {}}, "vars": {"cosmos_engine": "podman", "cosmos_remote_root": "/d"}}
    seen = _play(tmp_path, {"all": {"children": {"gpu": group}}})
    assert seen == {"engine": "podman", "remote_root": "/d", "checkpoint_dir": "/d/checkpoints"}
