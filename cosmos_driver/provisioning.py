"""Setup and health of GPU hosts: run the setup and health playbooks, and turn what they did
into one report per host (which stage failed and why, the health facts). The GPU count a
host reported is kept in the state directory for the scheduler."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall, PlaybookOutcome
from cosmos_driver.errors import ConfigurationError, ExecutionError
from cosmos_driver.store import write_json_atomic

log = logging.getLogger(__name__)

STAGES = ("preflight", "image", "checkpoints", "health")
SETUP_TIMEOUT_SECONDS = 6 * 3600  # checkpoint downloads are hundreds of GB
HEALTH_TIMEOUT_SECONDS = 900
TOKEN_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass(frozen=True)
class Secrets:
    """Where the Hugging Face token comes from: the environment (served to the play through
    the secret channel) and/or ansible-vault files holding `cosmos_hf_token`."""

    hf_token: str | None = field(default=None, repr=False)
    vault_files: tuple[Path, ...] = ()

    @classmethod
    def gather(cls, vault_files: list[str] | None = None) -> Secrets:
        token = next((os.environ[n] for n in TOKEN_ENV_NAMES if os.environ.get(n)), None)
        paths = tuple(Path(f).resolve() for f in vault_files or ())
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ConfigurationError(
                f"vault file {', '.join(missing)} does not exist; create it with "
                "`ansible-vault create FILE` holding `cosmos_hf_token: ...`"
            )
        return cls(token, paths)

    def for_call(self) -> dict[str, str]:
        return {"hf_token": self.hf_token} if self.hf_token else {}


@dataclass
class HostSetup:
    """What setup did on one host: each stage's result, the first failure, the health."""

    host: str
    stages: dict[str, str]
    failed_stage: str | None = None
    message: str = ""
    changed: int = 0
    health: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.failed_stage is None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def selected_stages(tags: str | None) -> tuple[str, ...]:
    """The stages `--tags` picks (comma-separated), in setup order; all by default."""
    if not tags:
        return STAGES
    wanted = [t.strip() for t in tags.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in STAGES]
    if unknown:
        raise ConfigurationError(
            f"--tags {','.join(unknown)}: unknown stage; choose from {', '.join(STAGES)}"
        )
    return tuple(s for s in STAGES if s in wanted)


def run_setup(
    adapter: AnsibleAdapter,
    limit: str,
    tags: str | None,
    secrets: Secrets,
    bootstrap_checkpoints: bool = False,
    on_task: Callable[[str], None] | None = None,
) -> list[HostSetup]:
    """Run playbooks/setup.yml and report per host. bootstrap_checkpoints lets a profile whose
    manifest lists no files yet download its repos whole, unverified (a first tree to record)."""
    stages = selected_stages(tags)
    call = PlaybookCall(
        "setup.yml",
        limit,
        {"cosmos_checkpoints_bootstrap": True} if bootstrap_checkpoints else {},
        timeout=SETUP_TIMEOUT_SECONDS,
        tags=",".join(stages) if tags else None,
        secrets=secrets.for_call(),
        vars_files=secrets.vault_files,
    )
    log.info("setup of %s: %s", limit, ", ".join(stages))
    if bootstrap_checkpoints:
        log.info("checkpoints: whole repos where the manifest lists no files (unverified)")
    log.info("the whole Ansible output goes to %s", setup_log(adapter))
    outcome = adapter.run(call, log_path=setup_log(adapter), on_task=on_task)
    return host_setups(outcome, stages)


def setup_log(adapter: AnsibleAdapter) -> Path:
    """Where setup appends the Ansible output of every run (the scratch folder of the state)."""
    return adapter.scratch_dir / "setup.log"


def host_setups(outcome: PlaybookOutcome, stages: tuple[str, ...]) -> list[HostSetup]:
    """One HostSetup per host the playbook touched, from its recap, failures and stats."""
    health = outcome.data.get("cosmos_health") or {}
    hosts = sorted(set(outcome.recap) | {f.host for f in outcome.failures})
    reports = []
    for host in hosts:
        failure = next((f for f in outcome.failures if f.host == host), None)
        failed_stage = _stage_of(failure.play) if failure else None
        unreachable = failure is not None and failure.unreachable
        reports.append(
            HostSetup(
                host=host,
                stages=_stage_results(stages, failed_stage, unreachable),
                failed_stage=failed_stage,
                message=failure.message if failure else "",
                changed=outcome.recap.get(host, {}).get("changed", 0),
                health=health.get(host),
            )
        )
    return reports


def _stage_of(play: str) -> str:
    """'Cosmos setup | image' -> 'image'."""
    name = play.rsplit("|", 1)[-1].strip()
    return name if name in STAGES else play


def _stage_results(
    stages: tuple[str, ...], failed: str | None, unreachable: bool
) -> dict[str, str]:
    results: dict[str, str] = {}
    reached_failure = False
    for stage in stages:
        if stage == failed:
            results[stage] = "unreachable" if unreachable else "failed"
            reached_failure = True
        else:
            results[stage] = "not run" if reached_failure else "ok"
    return results


def run_health(adapter: AnsibleAdapter, limit: str) -> dict[str, dict[str, Any]]:
    """Run playbooks/health.yml; every host's report (an unreachable host says so)."""
    call = PlaybookCall(
        "health.yml", limit, {"cosmos_health_fail_when_not_ready": False}, HEALTH_TIMEOUT_SECONDS
    )
    outcome = adapter.run(call, log_path=adapter.scratch_dir / "health.log")
    reports = dict(outcome.data.get("cosmos_health") or {})
    for failure in outcome.failures:
        reports.setdefault(failure.host, _failed_report(failure.host, failure.message))
    return reports


def _failed_report(host: str, message: str) -> dict[str, Any]:
    return {"host": host, "ready": False, "problems": [message]}


class HostFacts:
    """What health learned about each host, kept in <state>/hosts/<host>.json."""

    def __init__(self, state_root: Path) -> None:
        self.folder = state_root / "hosts"

    def save(self, reports: dict[str, dict[str, Any]]) -> None:
        for host, report in reports.items():
            write_json_atomic(self.folder / f"{host}.json", report)

    def gpu_count(self, host: str) -> int | None:
        """The GPU count the host's last health check saw, if it saw GPUs."""
        try:
            report = json.loads((self.folder / f"{host}.json").read_text())
        except (OSError, ValueError):
            return None
        count = report.get("gpu_count")
        return int(count) if isinstance(count, int) and count > 0 else None


def verify_checkpoints(
    adapter: AnsibleAdapter, limit: str, full: bool
) -> dict[str, dict[str, Any]]:
    """Each host's verification of its checkpoints against the profile's manifest."""
    call = PlaybookCall(
        "checkpoints_verify.yml",
        limit,
        {"cosmos_checkpoints_verify_full": full},
        timeout=SETUP_TIMEOUT_SECONDS,
    )
    outcome = adapter.run(call, log_path=adapter.scratch_dir / "checkpoints-verify.log")
    reports = dict(outcome.data.get("cosmos_checkpoints_verify") or {})
    for failure in outcome.failures:
        reports.setdefault(failure.host, {"ok": False, "error": failure.message})
    return reports


def hash_checkpoint_tree(adapter: AnsibleAdapter, host: str) -> list[dict[str, Any]]:
    """Every file of one host's checkpoint tree with its size and sha256."""
    call = PlaybookCall("checkpoints_manifest.yml", host, timeout=SETUP_TIMEOUT_SECONDS)
    outcome = adapter.run(call, log_path=adapter.scratch_dir / "checkpoints-manifest.log")
    if not outcome.ok:
        raise ExecutionError(f"hashing the checkpoints of {host} failed: {outcome.summary()}")
    files = (outcome.data.get("cosmos_checkpoints_manifest") or {}).get(host)
    if files is None:
        raise ExecutionError(f"{host} is not a host of the inventory (or it reported nothing)")
    return list(files)
