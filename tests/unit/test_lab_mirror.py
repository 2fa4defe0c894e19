"""The lab's checkpoint mirror: its generated tree and manifest, the HTTP answers (token,
faults, paths outside the tree), its log (never the token), and its process on loopback."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmos_driver.checkpoints import load_manifest
from cosmos_driver.lab import mirror
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.processes import pid_alive

# A made-up token that the log must never show.
TOKEN = "hf_unit-test-token-8c1f"
BASE_MODEL = "nvidia/Cosmos-Transfer1-7B/base_model.pt"


@pytest.fixture
def paths(tmp_path: Path) -> LabPaths:
    return LabPaths(tmp_path / "lab")


@pytest.fixture
def served(paths: LabPaths) -> Iterator[int]:
    """A mirror server on a free loopback port in this process; yields the port."""
    mirror.ensure_tree(paths)
    server = mirror.MirrorServer(0, paths.mirror_files, paths.mirror_faults)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def get(port: int, path: str, authorization: str | None = None) -> tuple[int, bytes, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Authorization": authorization} if authorization is not None else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_tree_matches_its_manifest(paths):
    manifest = load_manifest(mirror.ensure_tree(paths))
    assert manifest.profile == "lab"
    assert [e.path for e in manifest.files] == sorted(rel for rel, _ in mirror.TREE)
    for entry in manifest.files:
        data = (paths.mirror_files / entry.path).read_bytes()
        assert (len(data), sha256(data)) == (entry.size, entry.sha256)
    sizes = [e.size for e in manifest.files]
    assert min(sizes) < 4096 and max(sizes) >= 2 * 1024 * 1024


def test_tree_is_the_same_everywhere_and_written_once(paths, tmp_path):
    first = mirror.ensure_tree(paths).read_text()
    stamps = {p: p.stat().st_mtime_ns for p in paths.mirror_files.rglob("*") if p.is_file()}
    manifest_mtime = paths.mirror_manifest.stat().st_mtime_ns
    mirror.ensure_tree(paths)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert paths.mirror_manifest.stat().st_mtime_ns == manifest_mtime
    other = LabPaths(tmp_path / "other-lab")
    assert mirror.ensure_tree(other).read_text() == first


def test_a_tampered_mirror_file_is_mended(paths):
    mirror.ensure_tree(paths)
    target = paths.mirror_files / BASE_MODEL
    target.write_bytes(b"not a checkpoint")
    manifest = load_manifest(mirror.ensure_tree(paths))
    (entry,) = [e for e in manifest.files if e.path == BASE_MODEL]
    assert sha256(target.read_bytes()) == entry.sha256


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer    ", False),
        ("Basic dXNlcjpwYXNz", False),
        ("Bearer x", True),
        ("bearer hf_abc", True),
    ],
)
def test_bearer_token_header(header, expected):
    assert mirror.has_bearer_token(header) is expected


def test_serves_a_file_to_any_token(paths, served):
    status, body, headers = get(served, f"/{BASE_MODEL}", f"Bearer {TOKEN}")
    assert status == 200
    assert body == (paths.mirror_files / BASE_MODEL).read_bytes()
    assert int(headers["Content-Length"]) == len(body)


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Basic dXNlcjpwYXNz"])
def test_refuses_requests_without_a_token(served, authorization):
    status, body, headers = get(served, f"/{BASE_MODEL}", authorization)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert len(body) < 100


@pytest.mark.parametrize(
    "path",
    ["/nvidia/absent.pt", "/../manifest.yaml", "/nvidia/%2e%2e/%2e%2e/manifest.yaml", "/nvidia"],
)
def test_answers_404_outside_the_tree_and_for_folders(served, path):
    status, _, _ = get(served, path, f"Bearer {TOKEN}")
    assert status == 404


def test_url_quoted_paths_are_served(paths, served):
    status, body, _ = get(served, "/nvidia/Cosmos%2DTransfer1%2D7B/base_model.pt", "Bearer t")
    assert status == 200
    assert body == (paths.mirror_files / BASE_MODEL).read_bytes()


def test_faults_are_read_on_every_request(paths, served):
    original = (paths.mirror_files / BASE_MODEL).read_bytes()
    paths.mirror_faults.write_text(json.dumps({BASE_MODEL: "wrong-content"}))
    status, body, _ = get(served, f"/{BASE_MODEL}", "Bearer t")
    assert status == 200
    assert len(body) == len(original) and body != original

    paths.mirror_faults.write_text(json.dumps({BASE_MODEL: "truncate"}))
    status, body, headers = get(served, f"/{BASE_MODEL}", "Bearer t")
    assert status == 200
    assert original.startswith(body) and 0 < len(body) < len(original)
    assert int(headers["Content-Length"]) == len(body)

    paths.mirror_faults.write_text(json.dumps({BASE_MODEL: "missing"}))
    assert get(served, f"/{BASE_MODEL}", "Bearer t")[0] == 404

    paths.mirror_faults.write_text("{}")
    assert get(served, f"/{BASE_MODEL}", "Bearer t")[1] == original


def test_a_broken_faults_file_injects_nothing(paths, served):
    paths.mirror_faults.write_text("{not json")
    status, body, _ = get(served, f"/{BASE_MODEL}", "Bearer t")
    assert status == 200
    assert body == (paths.mirror_files / BASE_MODEL).read_bytes()


def test_log_names_method_path_status_and_auth_but_never_the_token(served, caplog):
    caplog.set_level(logging.INFO, logger=mirror.__name__)
    get(served, f"/{BASE_MODEL}?token={TOKEN}", f"Bearer {TOKEN}")
    get(served, f"/{BASE_MODEL}")
    lines = [r.getMessage() for r in caplog.records if r.name == mirror.__name__]
    assert f"GET /{BASE_MODEL} 200 auth=yes" in lines
    assert f"GET /{BASE_MODEL} 401 auth=no" in lines
    assert not any(TOKEN in line for line in lines)


def test_process_keeps_its_port_across_restarts_and_stops(paths):
    try:
        port = mirror.start_mirror(paths)
        pid = mirror.mirror_pid(paths)
        assert pid and pid_alive(pid)
        assert mirror.answers(port)
        assert mirror.start_mirror(paths) == port
        assert mirror.mirror_pid(paths) == pid, "a running mirror is kept"
        assert mirror.host_vars(paths) == {
            "cosmos_checkpoints_source": "mirror",
            "cosmos_checkpoints_mirror_url": f"http://127.0.0.1:{port}/",
            "cosmos_checkpoint_manifest": str(paths.mirror_manifest),
            "cosmos_checkpoints_mirror_sends_hf_token": True,
        }
        status, body, _ = get(port, f"/{BASE_MODEL}", f"Bearer {TOKEN}")
        assert status == 200 and body == (paths.mirror_files / BASE_MODEL).read_bytes()

        mirror.stop_mirror(paths)
        assert not pid_alive(pid)
        assert mirror.mirror_pid(paths) is None
        assert not mirror.answers(port)
        assert mirror.start_mirror(paths) == port, "the port is kept across lab.up"
    finally:
        mirror.stop_mirror(paths)
    log_text = (paths.mirror / "mirror.log").read_text()
    assert f"GET /{BASE_MODEL} 200 auth=yes" in log_text
    assert TOKEN not in log_text


def test_host_vars_need_a_started_mirror(paths):
    with pytest.raises(mirror.LabError, match="no port"):
        mirror.host_vars(paths)
