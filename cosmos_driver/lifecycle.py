"""One run's trip through the phase playbooks on one host: launch (stage and start), wait
(which collects in the same play once the container has exited), and the verdict. Every
transition is written to the run record as it happens (under the store lock, so a `kill`
from another process is never undone).

Transient faults (an unreachable host, a dropped SSH connection) are retried with backoff;
after that a phase raises HostDown and the scheduler decides what to do with the run. When
the driver is stopping (Ctrl-C), a phase raises DriverStopping and the run is left as it is:
its container keeps running and the same command re-attaches to it later."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall, PlaybookOutcome
from cosmos_driver.errors import ConfigurationError, ValidationError
from cosmos_driver.model import Job
from cosmos_driver.profiles import DEFAULT, ContainerPaths, Profile, RunEnd, profile_named
from cosmos_driver.records import FailureReason, Progress, RunRecord, RunState
from cosmos_driver.store import RunStore, write_json_atomic
from cosmos_driver.thumbnails import SharedThumbnails
from cosmos_driver.video import probe

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
# One wait phase blocks this long on the host; its log tail refreshes the progress display.
WAIT_PHASE_SECONDS = 30
START_PHASE_SECONDS = 300
# A phase playbook may run this long beyond its own wait before the driver kills it
# (a hung SSH connection must not hang the driver).
PHASE_MARGIN_SECONDS = 600
# Written by cosmos_container's collect action before it removes the container.
EXIT_FILE = "container-exit.json"
# The tar of outputs/ and logs/ that collect fetches (roles/cosmos_job/vars/main.yml).
BUNDLE_NAME = "collected.tar"
PROGRESS = re.compile(r"(\d+)/(\d+) \[")


@dataclass(frozen=True)
class PreparedRun:
    """A job made ready to send: its ids, its inputs by content hash, its local spec file."""

    run_id: str
    batch_id: str
    job: Job
    input_names: dict[str, str]
    spec_path: Path
    # A dependent run (4K upscale): the run whose outputs it reads on the same host.
    parent_id: str | None = None

    @property
    def container_name(self) -> str:
        return f"cosmos-{self.run_id}"

    @functools.cached_property
    def profile(self) -> Profile:
        """The job's model profile, looked up once: its spec, command and verdict rules."""
        return profile_named(self.job.profile)


@dataclass(frozen=True)
class RunRef:
    """A run known only by its record (kill, logs): enough for stop, peek and collect."""

    run_id: str
    batch_id: str

    @property
    def container_name(self) -> str:
        return f"cosmos-{self.run_id}"


AnyRun = PreparedRun | RunRef


@dataclass(frozen=True)
class Placement:
    """Where a run goes: a host, its GPU devices, and the containers now holding them."""

    host: str
    devices: tuple[str, ...] = ("0",)
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    reason: FailureReason
    detail: str


@dataclass(frozen=True)
class Exit:
    """How the container ended; `collected` when the wait phase collected it already."""

    finished: bool
    exit_code: int | None = None
    collected: bool = False


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


class DriverStopping(Exception):
    """The driver is stopping (Ctrl-C): leave the run and its container as they are."""


class HostDown(Exception):
    """A host stayed unreachable through every retry of a phase."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"{host}: {detail}")
        self.host = host
        self.detail = detail


class PhaseFailed(Exception):
    """A phase failed for a reason that retrying will not fix."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict


def file_sha256(path: Path) -> str:
    """The content hash that names an input on the host. Jobs of a batch often share an
    input, so a file is read once while its size, mtime and inode stay the same."""
    stat = path.stat()
    return _sha256_of(path.resolve(), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=1024)
def _sha256_of(path: Path, _size: int, _mtime_ns: int, _inode: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(store: RunStore, batch_id: str, run_id: str, job: Job) -> PreparedRun:
    """Hash the inputs, build the spec and save it as runs/<run_id>/spec.json."""
    names = {m: f"{file_sha256(p)}{p.suffix.lower()}" for m, p in job.inputs.items()}
    run = PreparedRun(run_id, batch_id, job, names, store.run_dir(run_id) / "spec.json")
    write_json_atomic(run.spec_path, run.profile.build_spec(job, names, ContainerPaths()))
    for modality, path in job.inputs.items():
        _thumbnails(path, store.run_dir(run_id) / "thumbnails", f"input-{modality}")
    return run


# Input thumbnails, made once per input file and linked into each run that uses it.
_input_thumbnails = SharedThumbnails()


def _thumbnails(video: Path, folder: Path, stem: str) -> None:
    """First and middle frame as JPEG, for status views and reports; never fails a run."""
    try:
        _input_thumbnails.write(video, folder, stem)
    except (ValidationError, OSError) as exc:
        log.warning("no thumbnails of %s: %s", video, exc)


@dataclass
class JobLifecycle:
    """Drives prepared runs through the phase playbooks; owns no thread of its own."""

    adapter: AnsibleAdapter
    store: RunStore
    stop: threading.Event = field(default_factory=threading.Event)
    retry: RetryPolicy = field(default_factory=RetryPolicy.from_env)
    on_change: Callable[[RunRecord], None] | None = None
    paths: ContainerPaths = field(default_factory=ContainerPaths)

    # -- the whole trip, for one run on one host (the sequential path and tests) --

    def execute(self, run: PreparedRun, placement: Placement) -> RunRecord:
        """Launch, wait, collect and judge one run; return its final record."""
        problem: Verdict | None = None
        exit_: Exit | None = None
        try:
            self.launch(run, placement)
            exit_ = self.wait(run, placement.host)
        except PhaseFailed as failed:
            problem = failed.verdict
        except HostDown as down:
            problem = Verdict(FailureReason.HOST_UNREACHABLE, str(down))
        return self.finish(run, placement.host, problem, exit_)

    # -- phases --

    def launch(self, run: PreparedRun, placement: Placement) -> None:
        """Stage the run, then start its container once the containers holding its GPUs have
        exited (the host waits for them; a phase that times out first is simply run again)."""
        self.update(run.run_id, lambda r: _enter(r, RunState.STAGING, placement.host))
        # An earlier attempt's exit and outputs must not stand for this one's (the host drops
        # its copies when it stages).
        (self.store.logs_dir(run.run_id) / EXIT_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.store.outputs_dir(run.run_id), ignore_errors=True)
        while True:
            outcome = self._phase(
                "job_launch.yml", run, placement.host, START_PHASE_SECONDS, placement
            )
            if outcome.data.get("started"):
                break

        def started(record: RunRecord) -> None:
            _enter(record, RunState.RUNNING, placement.host)
            record.gpu_devices = list(placement.devices)
            record.container_id = outcome.data.get("container_id")

        self.update(run.run_id, started)

    def wait(self, run: PreparedRun, host: str, deadline: float | None = None) -> Exit:
        """Wait, in bounded phases, until the container exits or the job's time is up; the
        phase that sees the exit collects too."""
        deadline = deadline or time.monotonic() + run.job.timeout
        collect = {"cosmos_job_collect_when_done": True}
        while (remaining := math.ceil(deadline - time.monotonic())) > 0:
            wait = min(WAIT_PHASE_SECONDS, remaining)
            outcome = self._phase("job_wait.yml", run, host, wait, extra=collect)
            record = self.update(run.run_id, lambda r, data=outcome.data: _note_wait(r, data))
            if outcome.data.get("finished") or not outcome.data.get("exists", True):
                return _exit_from(outcome.data, self._note_exit_left(record, outcome.data))
        return Exit(finished=False)

    def _note_exit_left(self, record: RunRecord, data: dict[str, Any]) -> RunRecord:
        """A wait phase that found the container gone and collected it: keep the exit an
        earlier collect saved on the host (a wait phase whose collect removed the container,
        then lost the host while fetching, is retried and finds it gone)."""
        if data.get("exists", True) or not data.get("collected") or record.exit_code is not None:
            return record
        left = self._exit_left_on_host(record.run_id)
        if left is None:
            return record
        return self.update(record.run_id, lambda r: setattr(r, "exit_code", left))

    def finish(
        self, run: AnyRun, host: str, problem: Verdict | None, exit_: Exit | None
    ) -> RunRecord:
        """Collect (whatever happened before, unless the wait phase did) and judge the run."""
        if exit_ is not None and exit_.collected:
            self.update(run.run_id, lambda r: _list_local_files(r, self.store))
            return self.judge(run, problem, exit_, None)
        self.update(run.run_id, lambda r: _enter(r, RunState.COLLECTING, host))
        collect_problem = self.collect(run, host)
        return self.judge(run, problem, exit_, collect_problem)

    def finish_orphan(self, run: AnyRun, host: str, exit_code: int | None) -> RunRecord:
        """Collect a run whose container is gone (the driver died around its exit) and judge
        it by the exit its record kept or, failing that, the one collect left on the host."""
        self.update(run.run_id, lambda r: _enter(r, RunState.COLLECTING, host))
        collect_problem = self.collect(run, host)
        if exit_code is None:
            exit_code = self._exit_left_on_host(run.run_id)
        if exit_code is None:
            unknown = Verdict(
                FailureReason.CONTAINER_EXIT,
                "exit code unknown: the container was gone when the driver came back",
            )
            return self.judge(run, unknown, None, collect_problem)
        return self.judge(run, None, Exit(True, exit_code), collect_problem)

    def collect(self, run: AnyRun, host: str, grace: int | None = None) -> Verdict | None:
        """Stop (if running), save and fetch log and outputs, remove the container."""
        overrides = {"cosmos_job_stop_grace": grace} if grace is not None else {}
        try:
            self._phase("job_collect.yml", run, host, extra=overrides)
        except PhaseFailed as failed:
            log.warning("run %s: collect failed: %s", run.run_id, failed)
            return failed.verdict
        except HostDown as down:
            log.warning("run %s: collect failed: %s", run.run_id, down)
            return Verdict(FailureReason.HOST_UNREACHABLE, str(down))
        finally:
            self.update(run.run_id, lambda r: _list_local_files(r, self.store))
        return None

    def peek(self, run: AnyRun, host: str) -> bool:
        """Fetch the container log so far into logs/container.log; False once the container
        no longer runs (exited, or gone)."""
        outcome = self._phase("job_peek.yml", run, host)
        return bool(outcome.data.get("still_running"))

    def stop_container(self, run: AnyRun, host: str, grace: int) -> None:
        """SIGTERM the container, SIGKILL it after `grace` seconds; collect is left to its
        driver."""
        self._phase("job_stop.yml", run, host, extra={"cosmos_job_stop_grace": grace})

    def judge(
        self,
        run: AnyRun,
        problem: Verdict | None,
        exit_: Exit | None,
        collect_problem: Verdict | None,
    ) -> RunRecord:
        """The first of: a cancel, a phase that failed, what the container did, a failed
        collect, outputs that are missing or do not decode, an enhanced prompt missing."""
        lines = self._log_lines(run.run_id)
        profile = self._profile_of(run)
        prompt = self._final_prompt(run, profile, lines)
        # Outputs are known only when the collect worked (a guardrail may show as none).
        outputs = self._output_names(run.run_id) if collect_problem is None else None
        verdict = (
            self._cancel_verdict(run)
            or problem
            or _exit_verdict(run, exit_, lines, profile, outputs)
            or collect_problem
            or self._output_verdict(run, profile)
            or _prompt_verdict(run, prompt)
        )
        tail = lines[-LOG_TAIL_LINES:]

        def conclude(record: RunRecord) -> None:
            if record.state is RunState.CANCELLED:
                return  # a `kill` in another process concluded it already
            record.enhanced_prompt = prompt
            if verdict:
                record.fail(verdict.reason, verdict.detail, tail)
            else:
                record.move_to(RunState.SUCCEEDED)

        record = self.update(run.run_id, conclude)
        log.info("run %s ended %s", run.run_id, record.state)
        return record

    # -- helpers --

    def update(self, run_id: str, change: Callable[[RunRecord], None]) -> RunRecord:
        record = self.store.update_run(run_id, change)
        if self.on_change:
            self.on_change(record)
        return record

    def _phase(
        self,
        playbook: str,
        run: AnyRun,
        host: str,
        wait: int = WAIT_PHASE_SECONDS,
        placement: Placement | None = None,
        extra: dict[str, Any] | None = None,
    ) -> PlaybookOutcome:
        """Run one phase playbook; retry while the host is unreachable; raise otherwise."""
        extravars = {**self._extravars(run, wait, placement), **(extra or {})}
        call = PlaybookCall(playbook, host, extravars, timeout=wait + PHASE_MARGIN_SECONDS)
        log_path = self.store.logs_dir(run.run_id) / "ansible.log"
        for delay in (*self.retry.delays, None):
            outcome = self.adapter.run(call, log_path=log_path, cancel=self.stop)
            if self.stop.is_set() or outcome.status == "canceled":
                raise DriverStopping(run.run_id)
            if outcome.ok:
                if outcome.data.get("collected"):
                    bundle = str(outcome.data.get("bundle") or BUNDLE_NAME)
                    unpack_bundle(self.store.run_dir(run.run_id), bundle)
                return outcome
            if not outcome.unreachable:
                raise PhaseFailed(Verdict(FailureReason.PLAYBOOK_FAILED, outcome.summary()))
            if delay is None:
                raise HostDown(host, outcome.summary())
            self.update(run.run_id, lambda r, o=outcome, d=delay: r.note(_retry_note(o, d)))
            if self.stop.wait(delay):
                raise DriverStopping(run.run_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _extravars(self, run: AnyRun, wait: int, placement: Placement | None) -> dict[str, Any]:
        common = {
            "cosmos_job_run_id": run.run_id,
            "cosmos_job_batch_id": run.batch_id,
            "cosmos_job_fetch_dir": str(self.store.run_dir(run.run_id).resolve()),
            "cosmos_job_wait_timeout": wait,
            "cosmos_job_start_timeout": wait,
            "cosmos_job_unpack_locally": False,
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

    def _cancel_verdict(self, run: AnyRun) -> Verdict | None:
        if self.store.cancel_requested(run.run_id):
            return Verdict(FailureReason.CANCELLED, "cancelled by `kill`")
        return None

    def _profile_of(self, run: AnyRun) -> Profile:
        """The job's profile; a run known only by its record has it there."""
        if isinstance(run, PreparedRun):
            return run.profile
        record = self.store.load_run(run.run_id)
        return profile_named(record.profile if record else DEFAULT)

    def _output_names(self, run_id: str) -> frozenset[str]:
        return frozenset(p.name for p in self.store.outputs_dir(run_id).glob("*"))

    def _output_verdict(self, run: AnyRun, profile: Profile) -> Verdict | None:
        """Every output the profile expects came back, and its video decodes."""
        folder = self.store.outputs_dir(run.run_id)
        for name in profile.outputs:
            if not (folder / name).exists():
                return Verdict(FailureReason.OUTPUT_MISSING, f"no {name} was produced")
        if not profile.outputs:
            return None  # the prompt upsampler's result is a line of its log
        video = folder / profile.video
        try:
            probe(video)
        except ValidationError as exc:
            return Verdict(FailureReason.OUTPUT_MISSING, str(exc))
        return None

    def _final_prompt(self, run: AnyRun, profile: Profile, lines: list[str]) -> str | None:
        """The prompt a run that enhances its prompt ended with; None for other runs."""
        if not _enhances(run) or profile.final_prompt is None:
            return None
        return profile.final_prompt(lines, self.store.outputs_dir(run.run_id))

    def _exit_left_on_host(self, run_id: str) -> int | None:
        """The exit code the collect action saved beside the log (logs/container-exit.json)."""
        saved = self.store.logs_dir(run_id) / EXIT_FILE
        try:
            return int(json.loads(saved.read_text())["exit_code"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _log_lines(self, run_id: str) -> list[str]:
        container_log = self.store.logs_dir(run_id) / "container.log"
        if not container_log.exists():
            return []
        return container_log.read_text(encoding="utf-8", errors="replace").splitlines()


def unpack_bundle(run_dir: Path, name: str) -> None:
    """Unpack the tar a collect fetched (outputs/ and logs/ of the run) into the run folder,
    then remove it. Only plain files under outputs/ and logs/ are accepted."""
    bundle = run_dir / Path(name).name
    if not bundle.exists():
        return
    with tarfile.open(bundle) as archive:
        members = archive.getmembers()
        strays = [m.name for m in members if not _bundle_member_ok(m)]
        if strays:
            raise PhaseFailed(
                Verdict(FailureReason.PLAYBOOK_FAILED, f"{bundle}: unexpected entries {strays}")
            )
        archive.extractall(run_dir, members=members, filter="data")
    bundle.unlink()


def _bundle_member_ok(member: tarfile.TarInfo) -> bool:
    parts = Path(member.name).parts
    return member.isfile() and len(parts) == 2 and parts[0] in ("outputs", "logs")


def _enter(record: RunRecord, state: RunState, host: str) -> None:
    record.host = host
    record.move_to(state)
    log.info("run %s: %s on %s", record.run_id, state, host)


def _retry_note(outcome: PlaybookOutcome, delay: float) -> str:
    return f"host unreachable, retrying in {delay:g} s: {outcome.summary()}"


def _note_wait(record: RunRecord, data: dict[str, Any]) -> None:
    """Keep what a wait phase saw: container times, exit code, diffusion progress."""
    record.container_started_at = data.get("started_at") or record.container_started_at
    record.container_finished_at = data.get("finished_at") or record.container_finished_at
    if data.get("finished"):
        record.exit_code = int(data["exit_code"])
    for line in reversed(data.get("log_tail") or []):
        found = PROGRESS.search(line)
        if found:
            record.progress = Progress(int(found[1]), int(found[2]))
            break


def _exit_from(data: dict[str, Any], record: RunRecord) -> Exit:
    """A finished container's exit; a vanished one's exit as recorded before, if it was."""
    collected = bool(data.get("collected"))
    if data.get("finished"):
        return Exit(True, int(data["exit_code"]), collected)
    if record.exit_code is not None:
        return Exit(True, record.exit_code, collected)
    raise PhaseFailed(
        Verdict(FailureReason.CONTAINER_EXIT, "the container vanished before its exit was seen")
    )


def _list_local_files(record: RunRecord, store: RunStore) -> None:
    run_dir = store.run_dir(record.run_id)
    for video in store.outputs_dir(record.run_id).glob("*.mp4"):
        _thumbnails(video, run_dir / "thumbnails", f"output-{video.stem}")
    record.thumbnails = sorted(
        str(p.relative_to(run_dir)) for p in (run_dir / "thumbnails").glob("*.jpg")
    )
    record.outputs = sorted(
        str(p.relative_to(run_dir)) for p in store.outputs_dir(record.run_id).glob("*")
    )
    record.logs = sorted(
        str(p.relative_to(run_dir)) for p in store.logs_dir(record.run_id).glob("*")
    )


def _enhances(run: AnyRun) -> bool:
    return isinstance(run, PreparedRun) and run.job.enhance


def _prompt_verdict(run: AnyRun, prompt: str | None) -> Verdict | None:
    """A run that enhances its prompt succeeds only with the prompt it ended with."""
    if _enhances(run) and prompt is None:
        return Verdict(FailureReason.OUTPUT_MISSING, "no enhanced prompt was produced")
    return None


def _exit_verdict(
    run: PreparedRun,
    exit_: Exit | None,
    log_lines: list[str],
    profile: Profile,
    outputs: frozenset[str] | None,
) -> Verdict | None:
    if exit_ is None:
        return None
    if not exit_.finished:
        return Verdict(FailureReason.TIMEOUT, f"did not finish within {run.job.timeout} s; stopped")
    if profile.guardrail_blocked(RunEnd(exit_.exit_code, log_lines, outputs)):
        return Verdict(
            FailureReason.GUARDRAIL_BLOCKED, "the guardrail blocked this prompt or video"
        )
    if exit_.exit_code == 0:
        return None
    return Verdict(FailureReason.CONTAINER_EXIT, f"container exited with code {exit_.exit_code}")
