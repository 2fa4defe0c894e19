#!/usr/bin/env python3
"""Stand-in for NVIDIA Cosmos Transfer2.5 ``examples/inference.py``: test and demo only.

No model is loaded. The script accepts the real command line (``-i SPEC... -o DIR`` and the
setup flags) and the real spec JSON/JSONL keys, rejects unknown ones as the real one does,
prints log lines and tqdm-like progress, and writes, per sample, ``<name>.mp4`` (the input
video through an ffmpeg filter, every frame kept), ``<name>.txt`` (the prompt) and
``<name>.json`` (the resolved sample).

It is installed in the simulator image at ``/workspace/examples/inference.py`` and launched
through the ``torchrun`` shim, which sets ``WORLD_SIZE`` and ``RANK``.

Simulation controls, from the environment (the real spec rejects unknown keys):

- ``COSMOS_SIM_DURATION``: seconds spread over the diffusion steps (2.0).
- ``COSMOS_SIM_EXIT_CODE``: after the steps, fail with this exit code.
- ``COSMOS_SIM_HANG``: after the startup lines, wait until signalled.
- ``COSMOS_SIM_GUARDRAIL``: the guardrail blocks every sample; with ``--keep-going`` (the
  default) the script skips them and exits 0 without an mp4, as the real one does.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from simkit import (
    Interrupted,
    ScriptCrash,
    diffuse,
    emit,
    install_signal_handlers,
    write_atomic,
)

PROGRESS_LABEL = "Sampling"
SCRIPT_PATH = "/workspace/examples/inference.py"
MODELS = ("edge", "depth", "seg", "vis", "edge/distilled")
CONTROLS = ("edge", "vis", "depth", "seg")
PRESETS = ("very_low", "low", "medium", "high", "very_high")
# Sample keys: name -> (types, default). Paths are relative to the spec file.
SAMPLE_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": ((str,), None),
    "prompt": ((str,), None),
    "prompt_path": ((str,), None),
    "video_path": ((str,), None),
    "negative_prompt": ((str,), None),
    "seed": ((int,), 2025),
    "guidance": ((int,), 3),
    "max_frames": ((int,), None),
    "num_steps": ((int,), 35),
    "resolution": ((str,), "720"),
    "sigma_max": ((int, float), None),
    "num_video_frames_per_chunk": ((int,), 93),
    "num_conditional_frames": ((int,), 1),
    "show_control_condition": ((bool,), False),
    "show_input": ((bool,), False),
    "keep_input_resolution": ((bool,), True),
    "image_context_path": ((str,), None),
}
PATH_KEYS = ("prompt_path", "video_path", "image_context_path")
# Keys of a control block: the common ones, and each control's own.
BLOCK_KEYS = ("control_path", "control_weight", "mask_path", "mask_prompt")
BLOCK_EXTRAS = {
    "edge": ("preset_edge_threshold",),
    "vis": ("preset_blur_strength",),
    "seg": ("control_prompt",),
    "depth": (),
}
# CLI overrides (`--negative-prompt` ...), applied to every sample.
OVERRIDES = ("prompt", "negative_prompt", "seed", "guidance", "num_steps", "sigma_max")
OUTPUT_FILTER = "negate"
# H.264 in yuv420p, as Cosmos writes its videos (and as browsers play them); an odd width
# or height is padded by one pixel, which yuv420p needs.
H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p")
EVEN = "pad=ceil(iw/2)*2:ceil(ih/2)*2"
MAX_EXIT_CODE = 255
TRUE_WORDS = ("1", "true", "yes", "on")


class SimError(ScriptCrash):
    """A failure the real script would show as a Python exception; exits ``exit_code``."""

    script_path = SCRIPT_PATH


@dataclass(frozen=True)
class Controls:
    """How the simulated run behaves (see the module docstring)."""

    duration: float = 2.0
    exit_code: int = 0
    hang: bool = False
    guardrail: bool = False


@dataclass
class Sample:
    """One video to generate: the resolved sample and where its outputs go."""

    values: dict[str, Any]
    controls: dict[str, dict[str, Any]]
    video: Path

    @property
    def name(self) -> str:
        return str(self.values["name"])


def log(message: str, level: str = "INFO") -> None:
    """A line in the loguru-like format of the real script."""
    emit(f"[{time.strftime('%m-%d %H:%M:%S')}|{level}|examples/inference.py] {message}")


def build_parser() -> argparse.ArgumentParser:
    """The real command line: inputs, output folder, setup flags and per-sample overrides."""
    parser = argparse.ArgumentParser(
        description="Cosmos Transfer2.5 inference (simulator)", allow_abbrev=False
    )
    parser.add_argument("-i", "--input-files", nargs="+", required=True, type=Path)
    parser.add_argument("-o", "--output-dir", required=True, type=Path)
    parser.add_argument("--model", choices=MODELS)
    parser.add_argument("--checkpoint-path")
    parser.add_argument("--experiment")
    parser.add_argument("--context-parallel-size", type=int)
    for flag in ("disable-guardrails", "offload-guardrail-models", "benchmark"):
        parser.add_argument(f"--{flag}", action="store_true")
    for flag in ("compile-tokenizer", "enable-parallel-tokenizer"):
        parser.add_argument(f"--{flag}", action="store_true")
    parser.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=True)
    for key in OVERRIDES:
        parser.add_argument(f"--{key.replace('_', '-')}", dest=f"override_{key}")
    return parser


def read_specs(path: Path) -> list[dict[str, Any]]:
    """A .json file holds one sample (an object) or a list; a .jsonl file one per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SimError(f"No such file or directory: '{path}'", "FileNotFoundError") from None
    try:
        if path.suffix == ".jsonl":
            loaded: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            loaded = json.loads(text)
    except json.JSONDecodeError as err:
        raise SimError(f"{path}: {err}", "json.decoder.JSONDecodeError") from None
    entries = loaded if isinstance(loaded, list) else [loaded]
    if not entries or not all(isinstance(entry, dict) for entry in entries):
        raise SimError(f"{path}: a spec holds one JSON object per sample")
    return entries


def check_value(key: str, value: Any, kinds: tuple[type, ...]) -> None:
    """Raise naming ``key`` when ``value`` has the wrong type or is out of range."""
    wrong_bool = isinstance(value, bool) and bool not in kinds
    if wrong_bool or not isinstance(value, kinds):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise SimError(f"{key}: expected {names}, got {value!r}", "pydantic.ValidationError")
    if key == "guidance" and not 0 <= value <= 7:
        raise SimError(f"guidance: must be an integer from 0 to 7, got {value!r}")
    if key == "sigma_max" and not 0 <= value <= 200:
        raise SimError(f"sigma_max: must be from 0 to 200, got {value!r}")
    if key == "num_steps" and value < 1:
        raise SimError(f"num_steps: must be at least 1, got {value!r}")


def check_block(control: str, block: Any) -> dict[str, Any]:
    """A control block: known keys, a weight in 0..1, presets from the fixed list."""
    if not isinstance(block, dict):
        raise SimError(f"{control}: expected an object, got {block!r}")
    allowed = (*BLOCK_KEYS, *BLOCK_EXTRAS[control])
    for key, value in block.items():
        if key not in allowed:
            raise SimError(f"{control}.{key}: extra inputs are not permitted (valid: {allowed})")
        if key.startswith("preset_") and value not in PRESETS:
            raise SimError(f"{control}.{key}: must be one of {PRESETS}, got {value!r}")
    weight = block.get("control_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise SimError(f"{control}.control_weight: must be a number from 0 to 1, got {weight!r}")
    return {"control_weight": float(weight), **block}


def existing(base: Path, value: str, key: str) -> Path:
    """A path of the spec, relative to the spec file's folder, that must exist."""
    path = base / value
    if not path.is_file():
        raise SimError(f"{key}: no such file: {path}", "FileNotFoundError")
    return path


def resolve_sample(entry: dict[str, Any], base: Path, args: argparse.Namespace) -> Sample:
    """Check one sample's keys and files, apply defaults and CLI overrides."""
    controls = {k: check_block(k, v) for k, v in entry.items() if k in CONTROLS}
    values = {k: v for k, v in entry.items() if k not in CONTROLS}
    for key, value in values.items():
        if key not in SAMPLE_KEYS:
            raise SimError(f"{key}: extra inputs are not permitted", "pydantic.ValidationError")
        check_value(key, value, SAMPLE_KEYS[key][0])
    values.update(cli_overrides(args))
    for key in ("name", "video_path"):
        if key not in values:
            raise SimError(f"{key}: field required", "pydantic.ValidationError")
    if not controls:
        raise SimError(f"a sample needs at least one control of {CONTROLS}")
    resolve_paths(values, controls, base)
    values["prompt"] = sample_prompt(values)
    resolved = {k: default for k, (_, default) in SAMPLE_KEYS.items() if default is not None}
    return Sample({**resolved, **values}, controls, Path(values["video_path"]))


def resolve_paths(values: dict[str, Any], controls: dict[str, dict[str, Any]], base: Path) -> None:
    """Make every path of a sample absolute, checking that its file exists."""
    for key in PATH_KEYS:
        if key in values:
            values[key] = str(existing(base, values[key], key))
    for control, block in controls.items():
        for key in ("control_path", "mask_path"):
            if key in block:
                block[key] = str(existing(base, block[key], f"{control}.{key}"))


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The override flags given, typed as the spec keys are, then checked like them."""
    found = {}
    for key in OVERRIDES:
        raw = getattr(args, f"override_{key}")
        if raw is None:
            continue
        kinds = SAMPLE_KEYS[key][0]
        try:
            value = float(raw) if kinds == (int, float) else kinds[0](raw)
        except ValueError:
            raise SimError(f"--{key.replace('_', '-')}: invalid value {raw!r}") from None
        check_value(key, value, kinds)
        found[key] = value
    return found


def sample_prompt(values: dict[str, Any]) -> str:
    if "prompt" in values:
        return str(values["prompt"])
    if "prompt_path" in values:
        return Path(values["prompt_path"]).read_text(encoding="utf-8").strip()
    raise SimError("prompt: give prompt or prompt_path", "pydantic.ValidationError")


def load_samples(args: argparse.Namespace) -> list[Sample]:
    """Every sample of every input file; names must be unique (they name the outputs)."""
    samples = []
    for path in args.input_files:
        base = path.resolve().parent
        samples.extend(resolve_sample(entry, base, args) for entry in read_specs(path))
    names = [sample.name for sample in samples]
    for name in names:
        if names.count(name) > 1 or not name or "/" in name:
            raise SimError(f"name: {name!r} must be unique and a plain file name")
    return samples


def check_world() -> int:
    """WORLD_SIZE as torchrun sets it, and enough visible devices for it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if visible and len(visible) < size:
        raise SimError(
            f"CUDA error: invalid device ordinal ({len(visible)} devices for {size} ranks)",
            "RuntimeError",
        )
    return size


def read_controls() -> Controls:
    """The simulation controls from the environment."""
    names = [item.name for item in fields(Controls)]
    env = {k: os.environ.get(f"COSMOS_SIM_{k.upper()}", "").strip() for k in names}
    try:
        duration = float(env["duration"]) if env["duration"] else Controls.duration
        code = int(env["exit_code"]) if env["exit_code"] else 0
    except ValueError as err:
        raise SimError(f"simulator control: {err}", "RuntimeError") from None
    if duration < 0 or not 0 <= code <= MAX_EXIT_CODE:
        raise SimError("simulator control out of range", "RuntimeError")
    return Controls(
        duration,
        code,
        env["hang"].lower() in TRUE_WORDS,
        env["guardrail"].lower() in TRUE_WORDS,
    )


def encode(source: Path, target: Path) -> None:
    """Write ``target`` from ``source`` with ffmpeg, keeping every frame, atomically."""
    partial = target.with_name(f".{target.name}.partial")
    command = [
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
        "-vf", f"{OUTPUT_FILTER},{EVEN}", "-fps_mode", "passthrough",
        *H264, "-an", "-f", "mp4", str(partial),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SimError(f"ffmpeg exited {done.returncode}: {done.stderr[-400:]}", "RuntimeError")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def generate(sample: Sample, args: argparse.Namespace, controls: Controls, seconds: float) -> bool:
    """One sample: guardrail, diffusion, outputs. False when the guardrail skipped it."""
    log(f"Generating {sample.name} with controls {sorted(sample.controls)}")
    if controls.guardrail and not args.disable_guardrails:
        log("Guardrail blocked video2world generation. (simulated)", "CRITICAL")
        if not args.keep_going:
            raise SimError("Guardrail blocked video2world generation.", "RuntimeError")
        return False
    diffuse(PROGRESS_LABEL, sample.values["num_steps"], seconds)
    if controls.exit_code:
        raise SimError(
            f"simulated failure (COSMOS_SIM_EXIT_CODE={controls.exit_code})",
            "RuntimeError",
            controls.exit_code,
        )
    out = args.output_dir / sample.name
    encode(sample.video, out.with_suffix(".mp4"))
    write_atomic(out.with_suffix(".txt"), sample.values["prompt"].encode("utf-8"))
    resolved = {**sample.values, **sample.controls}
    write_atomic(out.with_suffix(".json"), json.dumps(resolved, sort_keys=True).encode("utf-8"))
    log(f"Saved video to {out.with_suffix('.mp4')}")
    return True


def run(argv: list[str]) -> int:
    """Parse, validate and simulate; raise :class:`SimError` on failure."""
    args = build_parser().parse_args(argv)
    samples = load_samples(args)
    size = check_world()
    controls = read_controls()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    log("Cosmos Transfer2.5 SIMULATOR: no model is loaded (test/demo stand-in)")
    log(f"context parallel size {args.context_parallel_size or size}, {len(samples)} sample(s)")
    if controls.hang:
        emit("[simulator] simulated hang: waiting until signalled")
        while True:
            time.sleep(3600)
    done = [generate(s, args, controls, controls.duration / len(samples)) for s in samples]
    log(f"Finished: {sum(done)} of {len(samples)} sample(s) generated")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the simulator and return its exit code (argparse errors exit 2 directly)."""
    install_signal_handlers()
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except SimError as err:
        sys.stdout.flush()
        sys.stderr.write(err.render() + "\n")
        return err.exit_code
    except Interrupted as stop:
        emit(f"Received signal {stop.signum}, exiting")
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
