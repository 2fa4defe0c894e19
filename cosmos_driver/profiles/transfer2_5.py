"""Cosmos Transfer2.5: the spec JSON `examples/inference.py -i` reads, the torchrun command
line, output names and the guardrail signal (docs/cosmos-transfer.md §3, §4).

Batch fields map to Transfer2.5's own keys; a field it has no key for is refused when the
batch is validated (see `problems`), never dropped from the spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cosmos_driver.errors import ValidationError
from cosmos_driver.profiles.base import ContainerPaths, Problem, RunEnd

if TYPE_CHECKING:
    from cosmos_driver.model import Job

NAME = "transfer2.5"
SCRIPT = "examples/inference.py"
# The spec's `name`, which names the outputs: the same files as Transfer1's for every run.
OUTPUT_NAME = "output"
OUTPUTS = (f"{OUTPUT_NAME}.mp4", f"{OUTPUT_NAME}.txt")
CONTROLS = ("edge", "vis", "depth", "seg")
# Batch fields written as top-level keys of the same name.
TOP_LEVEL = ("negative_prompt", "num_steps", "guidance", "seed", "sigma_max")
# Batch fields that live inside a control block: field -> (control, key).
IN_CONTROL = {
    "blur_strength": ("vis", "preset_blur_strength"),
    "canny_threshold": ("edge", "preset_edge_threshold"),
}
# Batch sampling fields Transfer2.5 has no key for (it takes no output frame rate).
UNSUPPORTED = ("fps",)
MAX_GUIDANCE = 7


def build_spec(job: Job, input_names: dict[str, str], paths: ContainerPaths) -> dict[str, Any]:
    """The spec JSON: every parameter the job set under its Transfer2.5 name.

    Each control becomes a block with its weight and, when the batch gave one, its control
    video; Transfer2.5 computes the others from the input video."""
    _refuse_unexpressed(job)
    spec: dict[str, Any] = {
        "name": OUTPUT_NAME,
        "prompt": job.prompt,
        "video_path": f"{paths.inputs}/{input_names['color']}",
        **{k: v for k, v in job.sampling.items() if k in TOP_LEVEL},
    }
    for control, weight in job.controls.items():
        block: dict[str, Any] = {"control_weight": weight}
        if control in input_names:
            block["control_path"] = f"{paths.inputs}/{input_names[control]}"
        spec[control] = block
    for field, (control, key) in IN_CONTROL.items():
        if field in job.sampling:
            spec[control][key] = job.sampling[field]
    return spec


def _refuse_unexpressed(job: Job) -> None:
    """A job that bypassed validation must still never lose a parameter silently."""
    found = problems({**job.sampling, "controls": job.controls, "enhance": job.enhance})
    if found:
        raise ValidationError([f"job {job.name}: {field}: {message}" for field, message in found])


def command(job: Job, _input_names: dict[str, str], paths: ContainerPaths) -> list[str]:
    """torchrun with one process per GPU of the job; the context-parallel size follows the
    world size, so no other flag names the GPU count."""
    return [
        "torchrun",
        f"--nproc_per_node={job.gpus}",
        SCRIPT,
        "-i",
        paths.spec,
        "-o",
        paths.outputs,
    ]


def blocked(end: RunEnd) -> bool:
    """Transfer2.5 skips a sample its guardrail blocks and still exits 0: no video."""
    return end.exit_code == 0 and end.outputs is not None and OUTPUTS[0] not in end.outputs


def problems(raw: dict[str, Any]) -> list[Problem]:
    """The fields of a job (already of the right type) that Transfer2.5 cannot express."""
    controls = raw.get("controls") if isinstance(raw.get("controls"), dict) else {}
    return [
        *_unsupported_fields(raw),
        *_unsupported_controls(controls),
        *_control_fields_without_control(raw, controls),
        *_guidance(raw),
        *_upscale(raw),
        *_enhance(raw),
    ]


def _upscale(raw: dict[str, Any]) -> list[Problem]:
    if raw.get("upscale") is not True:
        return []
    return [("upscale", f"profile {NAME} has no 4K upscaler; remove it or use profile transfer1")]


def _enhance(raw: dict[str, Any]) -> list[Problem]:
    if raw.get("enhance") is not True:
        return []
    return [
        ("enhance", f"profile {NAME} has no prompt upsampler; remove it or use profile transfer1")
    ]


def _unsupported_fields(raw: dict[str, Any]) -> list[Problem]:
    return [
        (field, f"profile {NAME} has no {field} setting; remove it or use profile transfer1")
        for field in UNSUPPORTED
        if field in raw
    ]


def _unsupported_controls(controls: dict[str, Any]) -> list[Problem]:
    return [
        (
            f"controls.{control}",
            f"profile {NAME} has no {control} control (it has {', '.join(CONTROLS)}); "
            "remove it or use profile transfer1",
        )
        for control in controls
        if control not in CONTROLS
    ]


def _control_fields_without_control(raw: dict[str, Any], controls: dict[str, Any]) -> list[Problem]:
    return [
        (
            field,
            f"profile {NAME} sets {field} as {control}.{key}: "
            f"add controls.{control} or remove {field}",
        )
        for field, (control, key) in IN_CONTROL.items()
        if field in raw and control not in controls
    ]


def _guidance(raw: dict[str, Any]) -> list[Problem]:
    value = raw.get("guidance")
    if value is None:
        return []
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and 0 <= value <= MAX_GUIDANCE:
        return []
    return [("guidance", f"profile {NAME} takes a whole number from 0 to 7, got {value!r}")]
