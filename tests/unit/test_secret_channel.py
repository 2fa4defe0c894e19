"""The secret channel answers the lookup plugin by name, and leaves nothing behind."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from cosmos_driver.content import COLLECTION
from cosmos_driver.secret_channel import SOCKET_ENV, SecretChannel

ROOT = Path(__file__).resolve().parents[2]


def load_lookup():
    spec = importlib.util.spec_from_file_location(
        "cosmos_secret_lookup", COLLECTION / "plugins" / "lookup" / "cosmos_secret.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lookup_gets_each_secret_by_name_and_none_for_an_unknown_one():
    lookup = load_lookup()
    with SecretChannel({"hf_token": "hf_abc123"}) as channel:
        assert lookup.ask(str(channel.path), "hf_token") == "hf_abc123"
        assert lookup.ask(str(channel.path), "other") is None


def test_the_socket_is_private_and_gone_after_close():
    channel = SecretChannel({"hf_token": "x"})
    with channel:
        mode = os.stat(channel.path).st_mode & 0o777
        folder_mode = os.stat(channel.path.parent).st_mode & 0o777
        assert mode == 0o600
        assert folder_mode == 0o700
    assert not channel.path.parent.exists()


def test_the_lookup_falls_back_to_its_default_without_a_channel(monkeypatch):
    lookup = load_lookup()
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    plugin = lookup.LookupModule()
    assert plugin.run(["hf_token"], variables={}, default="from-env") == ["from-env"]


def test_the_lookup_uses_the_channel_named_in_the_environment(monkeypatch):
    lookup = load_lookup()
    with SecretChannel({"hf_token": "hf_live"}) as channel:
        monkeypatch.setenv(SOCKET_ENV, str(channel.path))
        plugin = lookup.LookupModule()
        assert plugin.run(["hf_token", "missing"], variables={}, default="d") == ["hf_live", "d"]


def test_a_channel_that_is_gone_is_an_error_not_an_empty_token(monkeypatch, tmp_path):
    lookup = load_lookup()
    monkeypatch.setenv(SOCKET_ENV, str(tmp_path / "no-such-socket"))
    with pytest.raises(Exception, match="secret channel did not answer"):
        lookup.LookupModule().run(["hf_token"], variables={})
