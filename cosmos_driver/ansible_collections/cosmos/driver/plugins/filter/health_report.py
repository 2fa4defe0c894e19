"""cosmos_health's report parts (GPU problems, smoke test, checkpoint state, problems and
notes) from what its tasks probed.

Python, not nested Jinja in vars/main.yml, so that every branch has a unit test. A problem
names what is wrong and the fix; a note says what was not checked and why. A probe that was
skipped lacks rc, stdout and the like: those read as rc 1 (or 'none' in a message) and empty
text, as before."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

GPU_LINE = re.compile(r"^GPU [0-9]+: ", re.MULTILINE)
# Each list of cosmos_checkpoints' verify result, its problem prefix, and whether its items
# are {path, ...} dicts rather than paths.
CHECKPOINT_LISTS = (
    ("missing", "missing: ", False),
    ("wrong_size", "wrong size: ", True),
    ("wrong_hash", "wrong sha256: ", True),
    ("unexpected", "unexpected: ", False),
    ("unreadable", "unreadable: ", True),
)


def output(result: Mapping, *keys: str) -> str:
    """The first non-empty of a result's `keys` (stderr, stdout, msg...), trimmed."""
    text: Any = ""
    for key in keys:
        text = result.get(key, "")
        if text:
            break
    return str(text).strip()


def truncate(text: str, length: int) -> str:
    """Jinja's `truncate(length)`: cut at a word before `length`, end in '...', 5 spare."""
    if len(text) <= length + 5:
        return text
    return text[: length - 3].rsplit(" ", 1)[0] + "..."


def gpu_problems(p: Mapping) -> list[str]:
    """nvidia-smi failed, its output was unreadable, or it shows another GPU count."""
    smi, seen, count = p["smi"], p["gpus_seen"], p["gpu_count"]
    if not p["has_gpus"]:
        return []
    if smi.get("rc", 1) != 0:
        return [
            f"nvidia-smi ({p['nvidia_smi']}) failed (rc {smi.get('rc', 'none')}:"
            f" {output(smi, 'stderr', 'stdout', 'msg')}): install or repair the NVIDIA"
            " driver, or set cosmos_gpu_count 0 for a host without GPUs"
        ]
    if p["gpu_parse_error"]:
        return [f"cannot read the output of nvidia-smi: {p['gpu_parse_error']}"]
    if len(seen) != int(count):
        return [
            f"nvidia-smi shows {len(seen)} GPUs but the inventory says cosmos_gpu_count"
            f" {count}: fix the inventory, or find the missing GPUs"
        ]
    return []


def smoke_message(p: Mapping) -> str:
    """Why the smoke test failed (ran too long, exited non-zero, saw no GPU), or what it saw."""
    smoke = p["smoke"]
    if smoke.get("timed_out", False):
        return (
            f"the smoke-test container ran past {p['smoke_timeout']} s: check the engine"
            " and the NVIDIA container toolkit"
        )
    if smoke.get("exit_code") != 0:
        return (
            f"the GPU smoke-test container failed (exit {smoke.get('exit_code', 'none')}:"
            f" {truncate(output(smoke, 'stderr', 'stdout'), 300)}): check the NVIDIA"
            " container toolkit and cosmos_gpu_flags"
        )
    seen = len(GPU_LINE.findall(smoke["stdout"]))
    if not seen:
        return (
            "the smoke-test container saw no GPU: check cosmos_gpu_flags (for example --gpus all)"
        )
    return f"{seen} GPU(s) seen in a container of {p['image']}"


def smoke_test(p: Mapping) -> dict[str, Any]:
    """Whether a throwaway GPU container of the image lists GPUs; skipped without either."""
    if not p["has_gpus"]:
        return {"ok": True, "skipped": True, "message": "no GPU (cosmos_gpu_count 0): skipped"}
    if not p["image_probe"]["exists"]:
        return {"ok": True, "skipped": True, "message": "no image: skipped"}
    smoke = p["smoke"]
    ok = smoke.get("exit_code") == 0 and bool(GPU_LINE.search(smoke.get("stdout", "")))
    return {"ok": ok, "skipped": False, "message": smoke_message(p)}


def checkpoints_state(p: Mapping) -> str:
    """skipped, no manifest, empty manifest, failed (verify did not run), verified or mismatch."""
    result = p["checkpoints"]
    if not p["check_checkpoints"]:
        return "skipped"
    if not p["checkpoint_manifest"]:
        return "no manifest"
    if not p["manifest"].get("files", []):
        return "empty manifest"
    if "ok" not in result:
        return "failed"
    return "verified" if result["ok"] else "mismatch"


def checkpoint_problems(result: Mapping) -> list[str]:
    """One line per file the checkpoint verification found wrong, by kind then path."""
    return [
        prefix + str(item["path"] if has_path else item)
        for key, prefix, has_path in CHECKPOINT_LISTS
        for item in result.get(key, [])
    ]


def checkpoint_report(p: Mapping) -> list[str]:
    """The verification failed, found a mismatch, or had an empty manifest to verify against."""
    state, where, manifest = checkpoints_state(p), p["checkpoint_dir"], p["checkpoint_manifest"]
    if state == "failed":
        return [f"cannot verify the checkpoints in {where}: {p['checkpoints'].get('msg', '')}"]
    if state == "mismatch":
        return [
            f"checkpoints in {where} do not match {manifest}"
            f" ({len(checkpoint_problems(p['checkpoints']))} files, see checkpoint_problems):"
            " run `invoke setup` (its checkpoints stage)"
        ]
    if state == "empty manifest":
        return [
            f"no files in the manifest {manifest}, so the checkpoints in {where} are"
            f" unverified: record one with `invoke checkpoints.manifest --host {p['host']}`"
            " from a tree you trust and commit it"
        ]
    return []


def disk_problems(p: Mapping) -> list[str]:
    """df failed (the folder may not exist yet), or less than min_free_gb is free."""
    df, root, free, needed = p["df"], p["remote_root"], p["free_gb"], p["min_free_gb"]
    if df.get("rc", 1) != 0:
        return [
            f"cannot read the free space at {root}: {str(df.get('stderr', '')).strip()}"
            " (run `invoke setup`, whose preflight creates it)"
        ]
    if float(free) < float(needed):
        return [f"only {free} GB free at {root}, below {needed} GB: free space there"]
    return []


def health_problems(p: Mapping) -> list[str]:
    """Every reason the host is not ready, in report order; empty when it is."""
    smoke = smoke_test(p)
    failed_smoke = [] if smoke["ok"] else [smoke["message"]]
    image = [] if p["image_probe"]["exists"] else [
        f"image {p['image']} is not on the host: run `invoke setup` (its image stage)"
    ]  # fmt: skip
    return gpu_problems(p) + failed_smoke + image + checkpoint_report(p) + disk_problems(p)


def health_notes(p: Mapping) -> list[str]:
    """What was not checked, and why: no GPU, checkpoints turned off or without a manifest."""
    notes = [] if p["has_gpus"] else ["no GPU (cosmos_gpu_count 0)"]
    state = checkpoints_state(p)
    if state == "skipped":
        notes.append("checkpoints not checked (cosmos_health_check_checkpoints false)")
    elif state == "no manifest":
        notes.append("checkpoints not checked: no manifest (cosmos_checkpoint_manifest is empty)")
    return notes


class FilterModule:
    """cosmos_health's report filters."""

    def filters(self):
        return {
            "cosmos_health_smoke_test": smoke_test,
            "cosmos_health_checkpoints_state": checkpoints_state,
            "cosmos_health_checkpoint_problems": checkpoint_problems,
            "cosmos_health_problems": health_problems,
            "cosmos_health_notes": health_notes,
        }
