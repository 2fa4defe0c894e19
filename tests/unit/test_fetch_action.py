"""The cosmos_fetch action: a collected tar comes home only with the size and SHA-256 the host
reported, and a bad transfer leaves nothing behind. The connection is replaced at its
boundary (fetch_file), as Ansible calls it."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail, AnsibleActionSkip

from cosmos_driver.content import COLLECTION

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = COLLECTION / "plugins" / "action" / "cosmos_fetch.py"
spec = importlib.util.spec_from_file_location("cosmos_fetch", PLUGIN)
cosmos_fetch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cosmos_fetch)


class Connection:
    """Copies the "remote" file, optionally damaging it on the way."""

    def __init__(self, damage: bool = False) -> None:
        self.become = None
        self._shell = SimpleNamespace(tmpdir="/tmp/remote-tmp")
        self.damage = damage
        self.fetched: list[str] = []

    def fetch_file(self, src: str, dest: str) -> None:
        self.fetched.append(src)
        shutil.copyfile(src, dest)
        if self.damage:
            with open(dest, "r+b") as handle:
                handle.write(b"X")


def fetch(connection: Connection, check_mode: bool = False, **args) -> dict:
    task = SimpleNamespace(args=args, async_val=0, check_mode=check_mode, action="cosmos_fetch")
    action = cosmos_fetch.ActionModule(task, connection, None, None, None, None)
    return action.run(task_vars={})


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, int, str]:
    remote = tmp_path / "host" / "collected.tar"
    remote.parent.mkdir()
    remote.write_bytes(b"outputs and logs" * 1000)
    data = remote.read_bytes()
    return remote, len(data), hashlib.sha256(data).hexdigest()


def test_a_bundle_comes_home_when_size_and_digest_match(tmp_path, bundle):
    remote, size, digest = bundle
    dest = tmp_path / "local" / "run" / "collected.tar"
    connection = Connection()

    result = fetch(connection, src=str(remote), dest=str(dest), size=size, sha256=digest)

    assert result["changed"] is True
    assert dest.read_bytes() == remote.read_bytes()
    assert connection.fetched == [str(remote)]  # one transfer, no stat module run first


def test_a_damaged_transfer_fails_and_leaves_no_file(tmp_path, bundle):
    remote, size, digest = bundle
    dest = tmp_path / "local" / "collected.tar"

    with pytest.raises(AnsibleActionFail, match="the host wrote"):
        fetch(Connection(damage=True), src=str(remote), dest=str(dest), size=size, sha256=digest)

    assert list(dest.parent.iterdir()) == []


def test_the_digest_is_required(tmp_path, bundle):
    remote, size, _ = bundle
    with pytest.raises(AnsibleActionFail, match="needs sha256"):
        fetch(Connection(), src=str(remote), dest=str(tmp_path / "x.tar"), size=size, sha256="")


def test_check_mode_fetches_nothing(tmp_path, bundle):
    remote, size, digest = bundle
    connection = Connection()
    dest = tmp_path / "local" / "collected.tar"

    with pytest.raises(AnsibleActionSkip):
        fetch(connection, True, src=str(remote), dest=str(dest), size=size, sha256=digest)

    assert connection.fetched == []
    assert not dest.exists()
