"""GPU hosts whose containers live in memory, standing in for AnsibleAdapter: each "host"
runs containers for a short while on the GPU devices it was given, a launch waits (as the
real container module does) for the containers named in `cosmos_job_after` to exit, a wait
that sees the exit collects when asked to (as the real wait phase does), and every
container's time on each device is recorded so overlaps can be checked."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome, TaskFailure

DEFAULT_SECONDS = 0.1


def ok(**data: Any) -> PlaybookOutcome:
    return PlaybookOutcome("successful", 0, data)


def unreachable(host: str, task: str) -> PlaybookOutcome:
    failure = TaskFailure(host, task, "Failed to connect to the host via ssh", True)
    return PlaybookOutcome("failed", 4, {}, [failure])


@dataclass
class Container:
    run_id: str
    host: str
    devices: tuple[str, ...]
    started: float
    ends: float
    exit_code: int = 0


@dataclass
class FakeHosts:
    """Stands in for AnsibleAdapter: GPU hosts whose containers live in memory."""

    video: bytes
    unreachable: dict[str, set[str]] = field(default_factory=dict)  # playbook -> hosts
    stage_seconds: float = 0.02
    cond: threading.Condition = field(default_factory=threading.Condition)
    containers: dict[str, Container] = field(default_factory=dict)
    intervals: dict[tuple[str, str], list[tuple[float, float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    calls: list[PlaybookCall] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)
    waited_for_holder: list[str] = field(default_factory=list)
    exits_left: dict[str, int] = field(default_factory=dict)  # run_id -> exit saved on the host

    def run(
        self, call: PlaybookCall, log_path: Path | None = None, cancel: Any = None
    ) -> PlaybookOutcome:
        with self.cond:
            self.calls.append(call)
            self.call_times.append(time.monotonic())
        if call.limit in self.unreachable.get(call.playbook, set()):
            return unreachable(call.limit, call.playbook)
        handler = getattr(self, "_" + call.playbook.removesuffix(".yml"))
        return handler(call)

    # -- the simulated hosts --

    def add_running(self, run_id: str, host: str, devices: tuple[str, ...], seconds: float):
        """A container left running by an earlier driver."""
        now = time.monotonic()
        with self.cond:
            self._create(run_id, host, devices, now, now + seconds)

    def _create(self, run_id, host, devices, started, ends, exit_code=0) -> Container:
        container = Container(run_id, host, devices, started, ends, exit_code)
        self.containers[f"cosmos-{run_id}"] = container
        for device in devices:
            self.intervals[(host, device)].append((started, ends, run_id))
        return container

    def _running(self, names: list[str], now: float) -> list[Container]:
        """The containers of `names` still running; a name that does not exist has exited."""
        found = (self.containers.get(name) for name in names)
        return [c for c in found if c is not None and c.ends > now]

    def _job_launch(self, call: PlaybookCall) -> PlaybookOutcome:
        """Stage (takes stage_seconds), then start once the containers it follows exited."""
        time.sleep(self.stage_seconds)
        extravars = call.extravars
        run_id = extravars["cosmos_job_run_id"]
        seconds = float(extravars["cosmos_job_env"].get("FAKE_SECONDS", DEFAULT_SECONDS))
        exit_code = int(extravars["cosmos_job_env"].get("FAKE_EXIT", 0))
        give_up = time.monotonic() + 5
        waited = False
        while time.monotonic() < give_up:
            with self.cond:
                now = time.monotonic()
                holders = self._running(extravars["cosmos_job_after"], now)
                if not holders:
                    devices = tuple(extravars["cosmos_job_gpu_devices"])
                    self._create(run_id, call.limit, devices, now, now + seconds, exit_code)
                    if waited:
                        self.waited_for_holder.append(run_id)
                    return ok(
                        uploaded=[], started=True, container_id=f"id-{run_id}", reattached=False
                    )
            waited = True
            time.sleep(max(0.0, min(h.ends for h in holders) - time.monotonic()) + 0.001)
        return ok(uploaded=[], started=False, exists=False)

    def _job_wait(self, call: PlaybookCall) -> PlaybookOutcome:
        name = f"cosmos-{call.extravars['cosmos_job_run_id']}"
        collect = bool(call.extravars.get("cosmos_job_collect_when_done"))
        with self.cond:
            container = self.containers.get(name)
        if container is None:
            gone = {"exists": False, "finished": False}
            return ok(**gone, **self._collect(call)) if collect else ok(**gone)
        left = container.ends - time.monotonic()
        time.sleep(max(0.0, min(left, call.extravars["cosmos_job_wait_timeout"])))
        if time.monotonic() < container.ends:
            return ok(exists=True, finished=False, log_tail=["3/35 [00:01<00:10]"])
        exit_ = {"exists": True, "finished": True, "exit_code": container.exit_code}
        exit_["log_tail"] = ["35/35 [00:02<00:00]"]
        return ok(**exit_, **self._collect(call)) if collect else ok(**exit_)

    def _job_collect(self, call: PlaybookCall) -> PlaybookOutcome:
        return ok(**self._collect(call))

    def _collect(self, call: PlaybookCall) -> dict[str, Any]:
        """Remove the container; fetch its outputs, log and (if it was there) exit."""
        with self.cond:
            container = self.containers.pop(f"cosmos-{call.extravars['cosmos_job_run_id']}", None)
        fetch = Path(call.extravars["cosmos_job_fetch_dir"])
        (fetch / "outputs").mkdir(parents=True, exist_ok=True)
        (fetch / "logs").mkdir(parents=True, exist_ok=True)
        (fetch / "outputs" / "output.mp4").write_bytes(self.video)
        (fetch / "logs" / "container.log").write_text("35/35 [00:02<00:00]\ndone\n")
        run_id = call.extravars["cosmos_job_run_id"]
        if container is not None:
            self.exits_left[run_id] = container.exit_code
        if run_id in self.exits_left:
            exit_ = json.dumps({"exit_code": self.exits_left[run_id]})
            (fetch / "logs" / "container-exit.json").write_text(exit_)
        return {"collected": True, "outputs": ["output.mp4"]}

    # -- what happened --

    def playbooks_of(self, run_id: str) -> list[str]:
        return [c.playbook for c in self.calls if c.extravars["cosmos_job_run_id"] == run_id]

    def calls_of(self, playbook: str) -> list[PlaybookCall]:
        return [c for c in self.calls if c.playbook == playbook]

    def overlaps(self) -> list[str]:
        found = []
        for (host, device), spans in self.intervals.items():
            spans = sorted(spans)
            for (_, end, first), (start, _, second) in itertools.pairwise(spans):
                if start < end:
                    found.append(f"{host}/{device}: {second} started while {first} ran")
        return found
