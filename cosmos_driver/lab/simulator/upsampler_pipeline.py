#!/usr/bin/env python3
"""Stand-in for Cosmos Transfer1's standalone prompt upsampler: test and demo infrastructure
only.

Installed in the simulator image at
``/workspace/cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py`` and
launched through the ``torchrun`` shim. Like the real script it takes ``--prompt``,
``--input_video`` (required), ``--checkpoint_dir`` and ``--offload_prompt_upsampler``,
refuses anything else (exit 2), needs ``RANK`` (a ``KeyError`` without torchrun), works on
rank 0 only, writes no files and prints one result line, ``Upsampled prompt: …``. The
"upsampled" prompt is the prompt with the prefix ``Upsampled: `` (as ``transfer.py
--upsample_prompt`` makes it), so tests can predict it.

Simulation controls: ``COSMOS_SIM_DURATION`` (seconds the "model" takes, default 0.5) and
``COSMOS_SIM_EXIT_CODE`` (fail with this code instead of answering).

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from simkit import ScriptCrash

SCRIPT_PATH = "/workspace/cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py"
LOG_SOURCE = "cosmos_transfer1/auxiliary/upsampler/model/upsampler.py"
MODEL_DIR = "nvidia/Cosmos-UpsamplePrompt1-12B-Transfer"
UPSAMPLED_PREFIX = "Upsampled: "
DEFAULT_DURATION = 0.5


class SimError(ScriptCrash):
    """A crash of the real script: printed as a traceback, exit 1 (or the code asked for)."""

    script_path = SCRIPT_PATH


def build_parser() -> argparse.ArgumentParser:
    """The real script's arguments (abbreviations refused, unlike the real one)."""
    parser = argparse.ArgumentParser(
        description="Prompt upsampler pipeline (Cosmos Transfer1 simulator)", allow_abbrev=False
    )
    parser.add_argument("--prompt", type=str, required=False)
    parser.add_argument("--input_video", type=str, required=True)
    parser.add_argument("--checkpoint_dir", type=str, default="checkpoints")
    parser.add_argument("--offload_prompt_upsampler", action="store_true")
    return parser


def log(message: str) -> None:
    """Print a line in the real log format and flush it."""
    stamp = time.strftime("%m-%d %H:%M:%S")
    sys.stdout.write(f"[{stamp}|INFO|{LOG_SOURCE}] {message}\n")
    sys.stdout.flush()


def number_from_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise SimError(f"{name}={text!r} is not a number") from None


def upsample(args: argparse.Namespace) -> str:
    """Check what the real pipeline needs, take the simulated time, return the new prompt."""
    if not Path(args.input_video).is_file():
        raise SimError(
            f"[Errno 2] No such file or directory: {args.input_video!r}", "FileNotFoundError"
        )
    if not args.prompt:
        raise SimError("expected string or bytes-like object, got 'NoneType'", "TypeError")
    log(f"Loading prompt upsampler from {Path(args.checkpoint_dir) / MODEL_DIR}")
    time.sleep(number_from_env("COSMOS_SIM_DURATION", DEFAULT_DURATION))
    code = int(number_from_env("COSMOS_SIM_EXIT_CODE", 0))
    if code:
        raise SimError(f"simulated failure (COSMOS_SIM_EXIT_CODE={code})", "RuntimeError", code)
    if args.offload_prompt_upsampler:
        log("Offloading prompt upsampler")
    return UPSAMPLED_PREFIX + args.prompt


def main(argv: list[str] | None = None) -> int:
    """Parse (argparse exits 2 on a bad command line), then answer on rank 0."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if "RANK" not in os.environ:
            raise SimError("'RANK'", "KeyError")
        if os.environ["RANK"] == "0":
            print("Upsampled prompt:", upsample(args), flush=True)
    except SimError as err:
        sys.stdout.flush()
        sys.stderr.write(err.render() + "\n")
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
