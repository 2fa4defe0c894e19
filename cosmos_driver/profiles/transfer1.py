"""Cosmos Transfer1: the controlnet spec JSON, the torchrun command line, output names and
failure signals (docs/cosmos-transfer.md §3, §4)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_driver.profiles.base import ContainerPaths, Problem, RunEnd

if TYPE_CHECKING:
    from cosmos_driver.model import Job

NAME = "transfer1"
SCRIPT = "cosmos_transfer1/diffusion/inference/transfer.py"
OUTPUT_NAME = "output"
OUTPUTS = (f"{OUTPUT_NAME}.mp4",)
GUARDRAIL_MARKERS = ("GUARDRAIL BLOCKED", "Guardrail blocked")
# The final (possibly upsampled) prompt, saved beside the video.
PROMPT_FILE = f"{OUTPUT_NAME}.txt"
ENHANCE_FLAGS = ("--upsample_prompt", "--offload_prompt_upsampler")
# The 4K upscaler (docs/cosmos-transfer.md §5): the upscale control alone, batch size 1
# and 10 steps, as upstream's assets/inference_upscaler.json and docs run it.
UPSCALE_WEIGHT = 0.5
UPSCALE_STEPS = 10
# Job settings that apply to the upscale run too (the others belong to the first run's
# controls); the output frame rate must stay the first run's.
UPSCALE_CARRIED = ("seed", "fps")


def build_spec(job: Job, input_names: dict[str, str], paths: ContainerPaths) -> dict[str, Any]:
    """The spec JSON: every parameter the job set, at top level, so none is dropped.

    A top-level scalar in the spec overrides the CLI default (the command line below never
    names these keys), and each control becomes a hint with its weight and, when the batch
    gave one, its input video; Cosmos generates the others from the color video."""
    spec: dict[str, Any] = {
        "prompt": job.prompt,
        "input_video_path": f"{paths.inputs}/{input_names['color']}",
        **job.sampling,
    }
    for control, weight in job.controls.items():
        hint: dict[str, Any] = {"control_weight": weight}
        if control in input_names:
            hint["input_control"] = f"{paths.inputs}/{input_names[control]}"
        spec[control] = hint
    return spec


def build_upscale_spec(job: Job, paths: ContainerPaths) -> dict[str, Any]:
    """The upscale run's spec: the parent run's video, mounted from its run folder on the
    same host, through the upscale control only."""
    return {
        "prompt": job.prompt,
        "input_video_path": f"{paths.parent}/{OUTPUTS[0]}",
        **{k: v for k, v in job.sampling.items() if k in UPSCALE_CARRIED},
        "num_steps": UPSCALE_STEPS,
        "batch_size": 1,
        "upscale": {"control_weight": UPSCALE_WEIGHT},
    }


def command(job: Job, _input_names: dict[str, str], paths: ContainerPaths) -> list[str]:
    """torchrun with one process per GPU of the job; --num_gpus must equal nproc. A job with
    `enhance: true` runs the prompt upsampler first (on rank 0, so torchrun even for one GPU)
    and offloads it before the diffusion model loads."""
    return [
        "torchrun",
        f"--nproc_per_node={job.gpus}",
        "--nnodes=1",
        "--node_rank=0",
        SCRIPT,
        "--checkpoint_dir",
        paths.checkpoints,
        "--controlnet_specs",
        paths.spec,
        "--video_save_folder",
        paths.outputs,
        "--video_save_name",
        OUTPUT_NAME,
        "--num_gpus",
        str(job.gpus),
        "--offload_text_encoder_model",
        "--offload_guardrail_models",
        *(ENHANCE_FLAGS if job.enhance else ()),
    ]


def final_prompt(_log_lines: list[str], outputs: Path) -> str | None:
    """The prompt the run ended with, upsampled or not: Transfer1 saves it beside the video."""
    try:
        text = (outputs / PROMPT_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def guardrail_blocked(log_lines: list[str]) -> bool:
    return any(marker in line for line in log_lines for marker in GUARDRAIL_MARKERS)


def blocked(end: RunEnd) -> bool:
    """Transfer1 crashes (non-zero exit) after its guardrail logs a block."""
    return guardrail_blocked(end.log_lines)


def problems(_raw: dict[str, Any]) -> list[Problem]:
    """Every batch-file field has a Transfer1 spec key, so none is refused."""
    return []
