"""One phase playbook of a run on its host: its extra variables, its time limit, and its
retries while the host is unreachable (HostDown after the last, DriverStopping on Ctrl-C)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmos_driver import host_contract
from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall, PlaybookOutcome
from cosmos_driver.errors import ConfigurationError
from cosmos_driver.profiles import ContainerPaths
from cosmos_driver.records import FailureReason
from cosmos_driver.run.files import unpack_bundle
from cosmos_driver.run.types import (
    AnyRun,
    DriverStopping,
    HostDown,
    PhaseFailed,
    Placement,
    PreparedRun,
    RunRef,
    Verdict,
)
from cosmos_driver.store import RunStore

# One wait phase blocks this long on the host; its log tail refreshes the progress display.
WAIT_PHASE_SECONDS = 30
START_PHASE_SECONDS = 300
# A phase playbook may run this long beyond its own wait before the driver kills it
# (a hung SSH connection must not hang the driver).
PHASE_MARGIN_SECONDS = 600


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between tries of a phase that found its host unreachable.

    COSMOS_RETRY_DELAYS (seconds, comma-separated) overrides the default 2,5,10."""

    delays: tuple[float, ...] = (2.0, 5.0, 10.0)

    @classmethod
    def from_env(cls) -> RetryPolicy:
        text = os.environ.get("COSMOS_RETRY_DELAYS")
        if not text:
            return cls()
        try:
            return cls(tuple(float(part) for part in text.split(",") if part.strip()))
        except ValueError:
            raise ConfigurationError(
                f"COSMOS_RETRY_DELAYS={text!r}: give seconds separated by commas, e.g. 2,5,10"
            ) from None


@dataclass
class PhaseRunner:
    """Runs the phase playbooks of runs; `note(run_id, text)` records each retry."""

    adapter: AnsibleAdapter
    store: RunStore
    stop: threading.Event
    retry: RetryPolicy
    paths: ContainerPaths
    note: Callable[[str, str], None]

    def run(
        self,
        playbook: str,
        run: AnyRun,
        host: str,
        wait: int = WAIT_PHASE_SECONDS,
        placement: Placement | None = None,
        extra: dict[str, Any] | None = None,
    ) -> PlaybookOutcome:
        """Run one phase playbook; retry while the host is unreachable; raise otherwise."""
        extravars = {**self._extravars(run, host, wait, placement), **(extra or {})}
        call = PlaybookCall(playbook, host, extravars, timeout=wait + PHASE_MARGIN_SECONDS)
        log_path = self.store.logs_dir(run.run_id) / "ansible.log"
        for delay in (*self.retry.delays, None):
            outcome = self.adapter.run(call, log_path=log_path, cancel=self.stop)
            if self.stop.is_set() or outcome.status == "canceled":
                raise DriverStopping(run.run_id)
            if outcome.ok:
                self._unpack(run, outcome)
                return outcome
            if not outcome.unreachable:
                raise PhaseFailed(Verdict(FailureReason.PLAYBOOK_FAILED, outcome.summary()))
            if delay is None:
                raise HostDown(host, outcome.summary())
            self.note(run.run_id, _retry_note(outcome, delay))
            if self.stop.wait(delay):
                raise DriverStopping(run.run_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _unpack(self, run: AnyRun, outcome: PlaybookOutcome) -> None:
        if outcome.data.get("collected"):
            bundle = str(outcome.data.get("bundle") or host_contract.BUNDLE_NAME)
            unpack_bundle(self.store.run_dir(run.run_id), bundle)

    def _extravars(
        self, run: AnyRun, host: str, wait: int, placement: Placement | None
    ) -> dict[str, Any]:
        common = {
            "cosmos_job_run_id": run.run_id,
            "cosmos_job_batch_id": run.batch_id,
            "cosmos_job_fetch_dir": str(self.store.run_dir(run.run_id).resolve()),
            "cosmos_job_wait_timeout": wait,
            "cosmos_job_start_timeout": wait,
            "cosmos_job_unpack_locally": False,
            **host_contract.role_vars(run.run_id, run.batch_id, host),
        }
        if isinstance(run, RunRef):
            return common
        return {**common, **self._job_extravars(run, placement)}

    def _job_extravars(self, run: PreparedRun, placement: Placement | None) -> dict[str, Any]:
        job = run.job
        devices = list(placement.devices) if placement else [str(i) for i in range(job.gpus)]
        return {
            "cosmos_job_inputs": [
                {"src": str(job.inputs[m]), "name": name} for m, name in run.input_names.items()
            ],
            "cosmos_job_spec_src": str(run.spec_path),
            "cosmos_job_command": run.profile.command(job, run.input_names, self.paths),
            "cosmos_job_gpu_devices": devices,
            "cosmos_job_after": list(placement.after) if placement else [],
            "cosmos_job_env": job.env,
            "cosmos_job_profile": job.profile,
            "cosmos_job_parent_run_id": run.parent_id or "",
            "cosmos_job_container_paths": {
                "run": self.paths.run,
                "inputs": self.paths.inputs,
                "checkpoints": self.paths.checkpoints,
                "parent": self.paths.parent,
            },
        }


def _retry_note(outcome: PlaybookOutcome, delay: float) -> str:
    return f"host unreachable, retrying in {delay:g} s: {outcome.summary()}"
