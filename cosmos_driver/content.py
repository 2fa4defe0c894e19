"""Where the Ansible content (playbooks, roles, library, ansible.cfg) lives on this machine."""

from __future__ import annotations

import os
from pathlib import Path

from cosmos_driver.errors import ConfigurationError


def content_root() -> Path:
    """The folder holding playbooks/ and roles/: COSMOS_CONTENT_DIR, else this checkout."""
    override = os.environ.get("COSMOS_CONTENT_DIR")
    root = Path(override) if override else Path(__file__).resolve().parents[1]
    if not (root / "playbooks").is_dir():
        raise ConfigurationError(
            f"no playbooks/ under {root}: install cosmos-driver from a checkout "
            "(pip install -e .) or set COSMOS_CONTENT_DIR to one"
        )
    return root
