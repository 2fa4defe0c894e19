"""`cosmos ui` as a user starts it: on loopback it needs no token; beyond loopback it makes
one, prints it in its URL, and refuses every request without it."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.fakes.cli import COSMOS, ROOT, free_port
from tests.fakes.state_dirs import sweep_batch


def start(state, *options: str) -> tuple[subprocess.Popen, str]:
    """Start `cosmos ui` and return it with the URL it printed."""
    server = subprocess.Popen(
        [COSMOS, "ui", "--state-dir", str(state), *options],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    line = server.stdout.readline()
    found = re.search(r"(http://\S+)", line)
    assert found, line
    return server, found.group(1)


def status(url: str) -> int:
    for _ in range(50):
        try:
            return urllib.request.urlopen(url, timeout=2).status
        except urllib.error.HTTPError as refused:
            return refused.code
        except OSError:
            time.sleep(0.2)  # not listening yet
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def state(tmp_path):
    return sweep_batch(tmp_path, guidance=[1], seeds=[1, 2]).store.root


def test_beyond_loopback_a_token_is_made_printed_and_required(state):
    port = free_port()
    server, url = start(state, "--host", "0.0.0.0", "--port", str(port))
    try:
        assert "?token=" in url
        token = url.split("?token=")[1]
        assert len(token) >= 24
        plain = f"http://127.0.0.1:{port}/"
        assert status(plain) == 401
        assert status(f"{plain}?token=wrong") == 401
        assert status(f"{plain}?token={token}") == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_on_loopback_it_needs_no_token(state):
    port = free_port()
    server, url = start(state, "--port", str(port))
    try:
        assert url == f"http://127.0.0.1:{port}/"
        assert status(url) == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
