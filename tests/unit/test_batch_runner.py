"""The batch runner's checks before anything starts: where the batch may run at all."""

from __future__ import annotations

import pytest

from cosmos_driver.batch_runner import BatchRunner
from cosmos_driver.errors import ConfigurationError
from cosmos_driver.store import RunStore
from tests.unit.test_upscale import Inventory, load


def test_an_inventory_without_gpus_is_refused_before_anything_starts(tmp_path):
    batch = load(tmp_path)
    fake = Inventory((tmp_path / "c.mp4").read_bytes())

    with pytest.raises(ConfigurationError, match="no host has a GPU"):
        BatchRunner(fake, RunStore(tmp_path / "state"), {"login": 0}).run(batch)

    assert fake.calls == []
