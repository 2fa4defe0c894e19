"""The batch runner's checks before anything starts: where the batch may run at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cosmos_driver.batch import load_batch
from cosmos_driver.batch_runner import BatchRunner
from cosmos_driver.errors import ConfigurationError
from cosmos_driver.store import RunStore
from tests.fakes.videos import make_mp4

BATCH = """\
name: up
jobs:
  - name: first
    prompt: a red car
    inputs: {color: c.mp4}
    controls: {edge: 0.4}
"""


@dataclass
class RecordingAdapter:
    """Stands in for AnsibleAdapter: any playbook run is recorded, none should happen."""

    inventory: str = "inventory.yml"
    calls: list[Any] = field(default_factory=list)

    def run(self, call: Any, log_path: Path | None = None, cancel: Any = None) -> None:
        self.calls.append(call)
        raise AssertionError(f"no playbook may run: {call}")


def test_an_inventory_without_gpus_is_refused_before_anything_starts(tmp_path):
    make_mp4(tmp_path / "c.mp4")
    (tmp_path / "batch.yaml").write_text(BATCH)
    batch = load_batch(tmp_path / "batch.yaml")
    fake = RecordingAdapter()

    with pytest.raises(ConfigurationError, match="no host has a GPU"):
        BatchRunner(fake, RunStore(tmp_path / "state"), {"login": 0}).run(batch)

    assert fake.calls == []
