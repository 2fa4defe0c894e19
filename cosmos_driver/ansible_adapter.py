"""The execution adapter: the one module that imports ansible_runner.

It turns "run playbook P on host H with these variables" into an ansible-runner call with a
fresh private data dir, and runner events into a typed PlaybookOutcome. It keeps secrets
out of what it writes, and cancels cleanly on Ctrl-C or a caller's event."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from cosmos_driver import content
from cosmos_driver.errors import ConfigurationError
from cosmos_driver.secret_channel import SOCKET_ENV, SecretChannel
from cosmos_driver.unsafe_vars import write_unsafe

log = logging.getLogger(__name__)

# Environment variables that hold secrets: blanked in the environment ansible-playbook gets,
# because ansible-runner writes that whole environment to artifacts/<ident>/command.
SECRET_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN")
# Set to keep each run's ansible-runner private data dir under <state>/tmp (debugging, and
# the secrets test, which searches them).
KEEP_RUNNER_DIRS_ENV = "COSMOS_KEEP_RUNNER_DIRS"
_POLL_SECONDS = 0.2
MESSAGE_LIMIT = 600  # characters of a task's failure message kept in outcomes and records


@dataclass(frozen=True)
class PlaybookCall:
    """One playbook run limited to one host pattern.

    `secrets` reach the play through the cosmos_secret lookup, never a file; `vars_files`
    (ansible-vault files, for example) are passed as `-e @file`, so only their paths are
    written anywhere."""

    playbook: str
    limit: str
    extravars: dict[str, Any] = field(default_factory=dict)
    timeout: int | None = None
    tags: str | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    vars_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class TaskFailure:
    host: str
    task: str
    message: str
    unreachable: bool
    play: str = ""


@dataclass
class PlaybookOutcome:
    """What a playbook run did: runner status, the data its plays set with set_stats, and
    every task failure with its host and message."""

    status: str
    rc: int
    data: dict[str, Any] = field(default_factory=dict)
    failures: list[TaskFailure] = field(default_factory=list)
    # The play recap per host: ok, changed, failures, dark (unreachable), skipped counts.
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "successful"

    @property
    def unreachable(self) -> bool:
        return any(f.unreachable for f in self.failures)

    def summary(self) -> str:
        """One line that says why the playbook failed, for records and the CLI."""
        if self.ok:
            return "ok"
        if not self.failures:
            return f"playbook {self.status} (rc {self.rc})"
        first = self.failures[0]
        return f"{first.host}: {first.task}: {first.message}"


class _EventCollector:
    """Keeps the few runner events we need; called in runner's read loop, so it stays fast."""

    def __init__(self, on_task: Callable[[str], None] | None = None) -> None:
        self.failures: list[TaskFailure] = []
        self.data: dict[str, Any] = {}
        self.recap: dict[str, dict[str, int]] = {}
        self.on_task = on_task

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event")
        event_data = event.get("event_data", {})
        if kind in ("runner_on_failed", "runner_on_unreachable") and not event_data.get(
            "ignore_errors"
        ):
            self.failures.append(_failure_from(event_data, kind == "runner_on_unreachable"))
        elif kind == "playbook_on_task_start" and self.on_task:
            self.on_task(f"{event_data.get('play', '')}: {event_data.get('task', '')}")
        elif kind == "playbook_on_stats":
            self.data = dict(event_data.get("artifact_data") or {})
            self.recap = _recap(event_data)
        return True


RECAP_COUNTS = ("ok", "changed", "failures", "dark", "skipped")


def _recap(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per host, the counts of the play recap."""
    recap: dict[str, dict[str, int]] = {}
    for count in RECAP_COUNTS:
        for host, value in (stats.get(count) or {}).items():
            recap.setdefault(host, dict.fromkeys(RECAP_COUNTS, 0))[count] = int(value)
    return recap


def _failure_from(event_data: dict[str, Any], unreachable: bool) -> TaskFailure:
    return TaskFailure(
        host=event_data.get("host", "?"),
        task=event_data.get("task", "?"),
        message=_failure_message(event_data.get("res") or {}),
        unreachable=unreachable,
        play=event_data.get("play", ""),
    )


def _failure_message(result: dict[str, Any]) -> str:
    """The most telling line of a failed result; a loop's is in its first failed item."""
    for item in result.get("results") or []:
        if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
            return _failure_message(item)
    text = str(result.get("msg") or result.get("stderr") or "failed")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _shorten(" | ".join(lines)) if lines else "failed"


def _shorten(text: str) -> str:
    """Keep the head and the tail of a long message: errors put their point at either end."""
    if len(text) <= MESSAGE_LIMIT:
        return text
    head = MESSAGE_LIMIT // 3
    return f"{text[:head]} … {text[-(MESSAGE_LIMIT - head - 3) :]}"


class AnsibleAdapter:
    """Runs the toolkit's playbooks against one inventory."""

    def __init__(self, inventory: Path, scratch_dir: Path) -> None:
        _put_ansible_on_path()
        self.inventory = inventory.resolve()
        self.scratch_dir = scratch_dir

    def run(
        self,
        call: PlaybookCall,
        log_path: Path | None = None,
        cancel: threading.Event | None = None,
        on_task: Callable[[str], None] | None = None,
    ) -> PlaybookOutcome:
        """Run one playbook; append its output to `log_path`; cancel when `cancel` is set."""
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        private_dir = Path(tempfile.mkdtemp(prefix="runner-", dir=self.scratch_dir))
        collector = _EventCollector(on_task)
        cancel = cancel or threading.Event()
        log.debug("playbook %s on %s starts", call.playbook, call.limit)
        try:
            with _channel_for(call.secrets) as channel:
                runner = self._run_async(call, private_dir, collector, cancel, channel)
            if log_path is not None:
                _append_stdout(runner, log_path)
        finally:
            if not os.environ.get(KEEP_RUNNER_DIRS_ENV):
                shutil.rmtree(private_dir, ignore_errors=True)
        outcome = PlaybookOutcome(
            runner.status, runner.rc, collector.data, collector.failures, collector.recap
        )
        log.debug("playbook %s on %s: %s", call.playbook, call.limit, outcome.status)
        return outcome

    def _run_async(
        self,
        call: PlaybookCall,
        private_dir: Path,
        collector: _EventCollector,
        cancel: threading.Event,
        channel: SecretChannel | None,
    ) -> Any:
        # Written as `!unsafe` YAML where ansible-runner picks them up (env/extravars): no
        # value is ever templated, and none lands on the command line runner records.
        write_unsafe(private_dir / "env" / "extravars", call.extravars)
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(private_dir),
            project_dir=str(content.COLLECTION),
            playbook=str(content.playbook(call.playbook)),
            inventory=str(self.inventory),
            limit=call.limit,
            envvars={**self._envvars(), **({SOCKET_ENV: str(channel.path)} if channel else {})},
            tags=call.tags,
            cmdline=" ".join(f"-e @{shlex.quote(str(f))}" for f in call.vars_files) or None,
            timeout=call.timeout,
            quiet=True,
            event_handler=collector,
            cancel_callback=cancel.is_set,
            settings={"suppress_ansible_output": True, "pexpect_timeout": 0.5},
        )
        _join(thread, cancel)
        return runner

    def _envvars(self) -> dict[str, str]:
        env = {
            "ANSIBLE_CONFIG": str(content.ANSIBLE_CFG),
            "ANSIBLE_COLLECTIONS_PATH": str(content.COLLECTIONS_PATH),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_NOCOLOR": "1",
        }
        env.update({name: "" for name in SECRET_ENV_NAMES if name in os.environ})
        return env


def _channel_for(secrets: dict[str, str]) -> contextlib.AbstractContextManager[Any]:
    """A secret channel for the run when it has secrets; job phases have none, and a socket
    and a thread per phase would be work on the hot path for nothing."""
    return SecretChannel(secrets) if secrets else contextlib.nullcontext()


def _put_ansible_on_path() -> None:
    """ansible-playbook lives beside this interpreter; find it whether or not a venv is active."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, path])


def _join(thread: threading.Thread, cancel: threading.Event) -> None:
    """Wait for runner's thread; on Ctrl-C cancel the playbook, wait for it, re-raise."""
    try:
        while thread.is_alive():
            thread.join(_POLL_SECONDS)
    except KeyboardInterrupt:
        cancel.set()
        thread.join()
        raise


def _append_stdout(runner: Any, log_path: Path) -> None:
    stdout = Path(runner.config.artifact_dir) / "stdout"
    if not stdout.exists():
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as out:
        out.write(stdout.read_text(encoding="utf-8", errors="replace"))


def inventory_hosts(inventory: Path) -> dict[str, dict[str, Any]]:
    """Every host of an inventory with its variables, as Ansible resolves them."""
    _put_ansible_on_path()
    out, err = ansible_runner.get_inventory(
        action="list",
        inventories=[str(inventory)],
        response_format="json",
        quiet=True,
    )
    if not isinstance(out, dict):
        raise ConfigurationError(
            f"{inventory}: not a readable inventory: {str(err).strip()[-300:]}"
        )
    hostvars = out.get("_meta", {}).get("hostvars", {})
    names = {h for group in out.values() if isinstance(group, dict) for h in group.get("hosts", [])}
    return {name: hostvars.get(name, {}) for name in sorted(names)}
