"""The device pool's handover: one holder and at most one successor per GPU, whatever
order the runs start in (a second successor would share the GPU with the first)."""

from __future__ import annotations

from dataclasses import dataclass

from cosmos_driver.device_pool import DevicePool
from cosmos_driver.model import Job


@dataclass
class _Run:
    run_id: str
    job: Job

    @property
    def container_name(self) -> str:
        return f"cosmos-{self.run_id}"


def _run(run_id: str) -> _Run:
    return _Run(run_id, Job(run_id, "a prompt", {}, {}, gpus=1))


def test_the_holder_starting_keeps_the_successor_already_staged_after_it():
    pool = DevicePool({"h1": 1})
    r0, r1, r2 = _run("r0"), _run("r1"), _run("r2")
    first = pool.fit(r0, None)
    assert pool.fit(r1, None) is not None  # staged to follow r0
    pool.started(r0, first)
    assert pool.fit(r2, None) is None  # the GPU has a holder and a successor: no room
    assert pool.hosts["h1"].devices[0].successor == "r1"


def test_the_successor_starting_clears_its_own_mark():
    pool = DevicePool({"h1": 1})
    r0, r1, r2 = _run("r0"), _run("r1"), _run("r2")
    pool.started(r0, pool.fit(r0, None))
    second = pool.fit(r1, None)
    pool.release("r0")
    pool.started(r1, second)
    assert pool.hosts["h1"].devices[0].successor is None
    assert pool.fit(r2, None) is not None  # r2 may now be staged after r1
