"""How a run ended, as the first that applies of: a cancel, a failed phase, what the
container did, a failed collect, missing or undecodable outputs, a missing enhanced prompt."""

from __future__ import annotations

from cosmos_driver.errors import ValidationError
from cosmos_driver.profiles import Profile, RunEnd
from cosmos_driver.records import FailureReason
from cosmos_driver.run.types import AnyRun, Exit, PreparedRun, Verdict
from cosmos_driver.store import RunStore
from cosmos_driver.video import probe

LOG_TAIL_LINES = 20


def cancel_verdict(store: RunStore, run: AnyRun) -> Verdict | None:
    if store.cancel_requested(run.run_id):
        return Verdict(FailureReason.CANCELLED, "cancelled by `kill`")
    return None


def exit_verdict(
    run: AnyRun,
    exit_: Exit | None,
    log_lines: list[str],
    profile: Profile,
    outputs: frozenset[str] | None,
) -> Verdict | None:
    """What the container's end says: a timeout, a guardrail block, a non-zero exit."""
    if exit_ is None:
        return None
    if not exit_.finished:
        timeout = run.job.timeout if isinstance(run, PreparedRun) else "its"
        return Verdict(FailureReason.TIMEOUT, f"did not finish within {timeout} s; stopped")
    if profile.guardrail_blocked(RunEnd(exit_.exit_code, log_lines, outputs)):
        return Verdict(
            FailureReason.GUARDRAIL_BLOCKED, "the guardrail blocked this prompt or video"
        )
    if exit_.exit_code == 0:
        return None
    return Verdict(FailureReason.CONTAINER_EXIT, f"container exited with code {exit_.exit_code}")


def output_verdict(store: RunStore, run: AnyRun, profile: Profile) -> Verdict | None:
    """Every output the profile expects came back, and its video decodes."""
    folder = store.outputs_dir(run.run_id)
    for name in profile.outputs:
        if not (folder / name).exists():
            return Verdict(FailureReason.OUTPUT_MISSING, f"no {name} was produced")
    if not profile.outputs:
        return None  # the prompt upsampler's result is a line of its log
    try:
        probe(folder / profile.video)
    except ValidationError as exc:
        return Verdict(FailureReason.OUTPUT_MISSING, str(exc))
    return None


def enhances(run: AnyRun) -> bool:
    return isinstance(run, PreparedRun) and run.job.enhance


def prompt_verdict(run: AnyRun, prompt: str | None) -> Verdict | None:
    """A run that enhances its prompt succeeds only with the prompt it ended with."""
    if enhances(run) and prompt is None:
        return Verdict(FailureReason.OUTPUT_MISSING, "no enhanced prompt was produced")
    return None
