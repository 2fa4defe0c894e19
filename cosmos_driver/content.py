"""Where the Ansible content lives: the cosmos.driver collection this package carries.

The wheel holds the collection (playbooks, roles, modules, plugins, checkpoint manifests),
the driver's ansible.cfg and the demo batch, so `pip install` gives a working tool."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# ANSIBLE_COLLECTIONS_PATH: the folder that holds ansible_collections/cosmos/driver.
COLLECTIONS_PATH = PACKAGE_DIR
COLLECTION = PACKAGE_DIR / "ansible_collections" / "cosmos" / "driver"
ANSIBLE_CFG = PACKAGE_DIR / "ansible.cfg"
MANIFESTS = COLLECTION / "manifests"
EXAMPLES = PACKAGE_DIR / "examples"


def playbook(name: str) -> Path:
    """The collection's playbook `name` (job_launch.yml, setup.yml, ...)."""
    return COLLECTION / "playbooks" / name
