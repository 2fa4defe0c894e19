"""The backend seam: SshHosts offers every method of the Backend protocol with the same
parameters, and the scheduler drives a backend it knows only by that protocol."""

from __future__ import annotations

import inspect
from pathlib import Path

from cosmos_driver.backend import Backend
from cosmos_driver.model import Job
from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import Exit, Placement
from cosmos_driver.scheduler import Scheduler, Ticket
from cosmos_driver.ssh_hosts import SshHosts
from tests.fakes.adapter import BATCH_ID, NO_RETRY, RUN_ID, FakeAdapter, pending_record

SEAM = sorted(
    name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_")
)


def test_ssh_hosts_has_every_method_of_the_seam_with_its_parameters():
    assert (
        sorted(
            [
                "adopt",
                "cancel",
                "collect",
                "collect_orphan",
                "find_in_flight",
                "launch",
                "never_fits",
                "place",
                "release",
                "unavailable",
                "wait",
            ]
        )
        == SEAM
    )
    for name in SEAM:
        wanted = list(inspect.signature(getattr(Backend, name)).parameters)
        assert list(inspect.signature(getattr(SshHosts, name)).parameters) == wanted, name
    assert isinstance(vars(Backend)["slots"], property)
    assert isinstance(vars(SshHosts)["slots"], property)


class OneSlot:
    """A backend of one slot that runs nothing: each run exits 0 at once, and is recorded."""

    def __init__(self, life: JobLifecycle) -> None:
        self.life = life
        self.on_room = None
        self.asked: list[str] = []
        self.slots = 1

    def place(self, run, only):
        self.asked.append("place")
        return Placement("slot")

    def adopt(self, run, placement):
        self.asked.append("adopt")

    def never_fits(self, run):
        return None

    def unavailable(self, where):
        return None

    def launch(self, run, placement):
        self.asked.append("launch")
        self.life.update(run.run_id, lambda r: r.move_to(RunState.RUNNING))
        return placement

    def wait(self, run, placement):
        self.asked.append("wait")
        return Exit(True, 0, collected=True)

    def collect(self, run, placement, problem, exit_) -> RunRecord:
        self.asked.append("collect")
        return self.life.update(run.run_id, lambda r: r.move_to(RunState.SUCCEEDED))

    def collect_orphan(self, run, placement, exit_code):
        raise AssertionError("no orphan here")

    def cancel(self, run, placement):
        raise AssertionError("no cancel here")

    def release(self, run_id):
        self.asked.append("release")


def test_the_scheduler_drives_any_backend_through_the_seam(store, mp4, tmp_path: Path):
    color = tmp_path / "c.mp4"
    color.write_bytes(b"color")
    job = Job("j", "a prompt", {"color": color}, {"edge": 1.0})
    pending_record(store, job)
    life = JobLifecycle(FakeAdapter(store, mp4), store, retry=NO_RETRY)
    backend = OneSlot(life)
    Scheduler(life, backend).run([Ticket(prepare(store, BATCH_ID, RUN_ID, job))])
    assert backend.asked == ["place", "launch", "wait", "collect", "release"]
    assert store.load_run(RUN_ID).state is RunState.SUCCEEDED
    assert backend.on_room is not None  # the scheduler asked to be woken
