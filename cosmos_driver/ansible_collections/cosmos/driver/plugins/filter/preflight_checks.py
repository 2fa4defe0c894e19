"""cosmos_preflight's checks, each {ok, skipped, message}, from what its tasks probed.

Python, not nested Jinja in vars/main.yml, so that every branch has a unit test. A message
names what is wrong and the fix. A probe that was skipped (or has not run) lacks rc, stdout
and stderr: those read as rc 1 (or 'none' in a message) and empty text, as before."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible.module_utils.compat.version import LooseVersion

Check = dict[str, Any]
DRIVER_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def output(result: Mapping, *keys: str) -> str:
    """The first non-empty of a result's `keys` (stderr, stdout, msg...), trimmed."""
    text: Any = ""
    for key in keys:
        text = result.get(key, "")
        if text:
            break
    return str(text).strip()


def last_probe(probe: Mapping, reprobe: Mapping | None) -> Mapping:
    """The probe run again after the toolkit was configured, else the first one."""
    if isinstance(reprobe, Mapping) and not reprobe.get("skipped", False):
        return reprobe
    return probe


def check(ok: bool, message: str, skipped: bool = False) -> Check:
    """One entry of the report: whether it passed, whether it was skipped, and why."""
    return {"ok": ok, "skipped": skipped, "message": message}


def gpu_skip_reason(p: Mapping) -> str:
    """Why the GPU checks were skipped: no GPU at all, or no GPU runtime."""
    if not p["has_gpus"]:
        return "no GPU (cosmos_gpu_count 0): skipped"
    return "no GPU runtime (cosmos_gpu_flags empty): skipped"


def engine_message(p: Mapping, state: Mapping) -> str:
    """Not installed, the user may not use it, it does not answer, or its version and runtimes."""
    engine, error = p["engine"], state["error"]
    if not state["installed"]:
        return (
            f"{engine} is not installed: install Docker Engine or Podman (see docs/setup.md),"
            " or set cosmos_engine to the engine the host has"
        )
    if not state["running"] and "permission denied" in str(error).lower():
        return (
            f"{p['ssh_user']} cannot use {engine}: {error}. Add the user to the {engine}"
            " group, or connect as a user that may run containers"
        )
    if not state["running"]:
        return (
            f"{engine} does not answer ({error}): start it (systemctl start"
            f" {p['engine_service']}) or fix cosmos_engine_env"
        )
    return f"{engine} {state['version']} runs (runtimes: {', '.join(state['runtimes'])})"


def engine_check(p: Mapping) -> Check:
    """Whether the engine (as last probed) is installed and answers the SSH user."""
    state = last_probe(p["engine_probe"], p.get("engine_reprobe"))
    return check(state["running"], engine_message(p, state))


def driver_version(probe: Mapping) -> str:
    """The first line nvidia-smi printed, trimmed; '' when it printed nothing or was skipped."""
    lines = probe.get("stdout_lines", [])
    return str(lines[0] if lines else "").strip()


def driver_readable(probe: Mapping) -> bool:
    """nvidia-smi exited 0 and printed a dotted version number (a GPU host's driver works)."""
    return probe.get("rc", 1) == 0 and bool(DRIVER_VERSION.match(driver_version(probe)))


def older(version: str, minimum: Any) -> bool:
    """Ansible's `version` test as the Jinja had it: loose comparison."""
    return LooseVersion(version) < LooseVersion(str(minimum))


def driver_message(p: Mapping) -> str:
    """No version (with nvidia-smi's own words), too old, or the version and the minimum."""
    probe, minimum, version = p["driver_probe"], p["min_driver"], driver_version(p["driver_probe"])
    if not driver_readable(probe):
        return (
            f"nvidia-smi ({p['nvidia_smi']}) gives no driver version (rc"
            f" {probe.get('rc', 'none')}: {output(probe, 'stderr', 'stdout', 'msg')})."
            f" Install the NVIDIA driver ({minimum} or newer) and reboot,"
            " or set cosmos_gpu_count 0 for a host without GPUs"
        )
    if older(version, minimum):
        return f"NVIDIA driver {version} is older than {minimum}: upgrade the driver and reboot"
    return f"NVIDIA driver {version} (>= {minimum})"


def driver_check(p: Mapping) -> Check:
    """Whether nvidia-smi names a driver at least min_driver; skipped without GPUs."""
    if not p["has_gpus"]:
        return check(True, gpu_skip_reason(p), skipped=True)
    probe = p["driver_probe"]
    ok = driver_readable(probe) and not older(driver_version(probe), p["min_driver"])
    return check(ok, driver_message(p))


def cdi_found(state: Mapping) -> bool:
    """Whether any of the stat results of the CDI spec paths exists."""
    return any(r["stat"].get("exists") for r in state.get("results", []) if "stat" in r)


def toolkit_ready(p: Mapping) -> bool:
    """Podman: a CDI spec exists; Docker: the engine (as last probed) has an nvidia runtime."""
    if p["engine"] == "podman":
        return cdi_found(last_probe(p["cdi_probe"], p.get("cdi_reprobe")))
    return bool(last_probe(p["engine_probe"], p.get("engine_reprobe"))["nvidia_runtime"])


def toolkit_message(p: Mapping) -> str:
    """How to make the toolkit serve the engine: a CDI spec for Podman, a runtime for Docker."""
    engine, ctk, specs = p["engine"], p["nvidia_ctk"], p["cdi_specs"]
    if engine == "podman":
        return (
            f"no NVIDIA CDI spec ({' or '.join(specs)}): install the NVIDIA container"
            f" toolkit and run `{ctk} cdi generate --output={specs[0]}`,"
            " or set cosmos_preflight_configure_toolkit true"
        )
    return (
        f"the NVIDIA container toolkit is not configured for {engine} (no nvidia runtime):"
        f" install it and run `{ctk} runtime configure --runtime={engine}`, then restart"
        f" {p['engine_service']}; or set cosmos_preflight_configure_toolkit true"
    )


def toolkit_check(p: Mapping) -> Check:
    """Whether the NVIDIA container toolkit serves the engine; skipped without a GPU runtime."""
    if not p["has_gpu_runtime"]:
        return check(True, gpu_skip_reason(p), skipped=True)
    if toolkit_ready(p):
        return check(True, f"NVIDIA container toolkit configured for {p['engine']}")
    return check(False, toolkit_message(p))


def git_check(p: Mapping) -> Check:
    """Whether git is on the host; only the git image source needs it."""
    source, probe = p["image_source"], p["git_probe"]
    if source != "git":
        return check(True, f"cosmos_image_source is {source}: git not needed, skipped", True)
    version = str(probe.get("stdout", "")).strip() if probe.get("rc", 1) == 0 else ""
    if version.startswith("git version "):
        return check(True, version)
    stderr = str(probe.get("stderr", "")).strip()
    return check(
        False,
        f"git is not on the host (`git --version` rc {probe.get('rc', 'none')}"
        f"{': ' + stderr if stderr else ''}) and the image role clones the Cosmos"
        " source with it: install git (for example apt-get install git, or dnf"
        " install git), or set cosmos_image_source local",
    )


def disk_check(p: Mapping) -> Check:
    """Whether the Cosmos folder's filesystem has min_free_gb free (free_gb, from df)."""
    df, root, free, needed = p["df"], p["remote_root"], p["free_gb"], p["min_free_gb"]
    if df.get("rc", 1) != 0:
        stderr = str(df.get("stderr", "")).strip()
        return check(False, f"cannot read the free space at {root}: {stderr}")
    if float(free) < float(needed):
        return check(
            False,
            f"only {free} GB free at {root}, below the {needed} GB needed: free"
            " space there, or point cosmos_remote_root at a larger filesystem",
        )
    return check(True, f"{free} GB free at {root} (>= {needed} GB)")


def preflight_checks(p: Mapping) -> dict[str, Check]:
    """The five checks of the report, from the probes and settings in `p`."""
    return {
        "engine": engine_check(p),
        "driver": driver_check(p),
        "toolkit": toolkit_check(p),
        "git": git_check(p),
        "disk": disk_check(p),
    }


class FilterModule:
    """cosmos_preflight's filters."""

    def filters(self):
        return {
            "cosmos_preflight_checks": preflight_checks,
            "cosmos_preflight_toolkit_ready": toolkit_ready,
            "cosmos_preflight_driver_version": driver_version,
        }
