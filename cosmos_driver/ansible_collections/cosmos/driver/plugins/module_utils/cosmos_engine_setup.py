"""cosmos_container's actions that set up and check a host's engine rather than run a job:
image_info, import, build, engine_info (read-only, never failing for an absent engine) and
run_once (a throwaway smoke-test container). Each takes the module and an Engine
(module_utils cosmos_engine) and returns the module's result."""

import json
import os
import time


def action_image_info(module, engine):
    image = engine.inspect_image(module.params["image"])
    if image is None:
        return dict(changed=False, exists=False, image_labels={})
    labels = (image.get("Config") or {}).get("Labels") or {}
    return dict(changed=False, exists=True, image_labels=labels, image_id=image["Id"])


def action_import(module, engine):
    image = module.params["image"]
    if engine.inspect_image(image) is not None:
        return dict(changed=False, exists=True)
    if not module.check_mode:
        engine.call(["import", module.params["dest"], image])
    return dict(changed=True, exists=True)


def build_argv(params):
    """The `build` argv: tag, network, Dockerfile, build args and labels, then the context."""
    argv = ["build", "-t", params["image"]]
    if params["network"]:
        argv += ["--network", params["network"]]
    if params["dockerfile"]:
        argv += ["-f", params["dockerfile"]]
    for key, value in sorted(params["build_args"].items()):
        argv += ["--build-arg", "%s=%s" % (key, value)]
    for key, value in sorted(params["labels"].items()):
        argv += ["--label", "%s=%s" % (key, value)]
    return argv + [params["context"]]


def action_build(module, engine):
    params = module.params
    if module.check_mode:
        return dict(changed=True, exists=True)
    if engine.call(build_argv(params), timeout=params["build_timeout"]) is None:
        module.fail_json(
            msg="%s build of %s took over %d s"
            % (params["engine"], params["image"], params["build_timeout"])
        )
    image = engine.inspect_image(params["image"])
    return dict(changed=True, exists=True, image_id=image["Id"])


def docker_info(data):
    """engine_info fields from `docker info --format '{{json .}}'`."""
    runtimes = sorted((data.get("Runtimes") or {}).keys())
    return dict(
        version=data.get("ServerVersion") or "",
        runtimes=runtimes,
        default_runtime=data.get("DefaultRuntime") or "",
        rootless=any("rootless" in opt for opt in data.get("SecurityOptions") or []),
    )


def podman_info(data):
    """engine_info fields from `podman info --format json` (CDI, not a runtime, gives GPUs)."""
    host = data.get("host") or {}
    runtime = (host.get("ociRuntime") or {}).get("name") or ""
    return dict(
        version=(data.get("version") or {}).get("Version") or "",
        runtimes=[runtime] if runtime else [],
        default_runtime=runtime,
        rootless=bool((host.get("security") or {}).get("rootless")),
    )


def action_engine_info(module, engine):
    """Whether the engine is installed and answers this user, and its runtimes; read-only."""
    result = dict(changed=False, installed=engine.cli is not None, running=False, error="")
    result["nvidia_runtime"] = False
    if engine.cli is None:
        return dict(result, error="%s: command not found" % module.params["engine"])
    fmt = "{{json .}}" if module.params["engine"] == "docker" else "json"
    proc = engine.call(["info", "--format", fmt], check=False, timeout=module.params["timeout"])
    if proc is None:
        return dict(result, error="info did not answer in %d s" % module.params["timeout"])
    try:
        data = json.loads(proc.stdout or "{}")
    except ValueError:
        data = {}
    errors = [proc.stderr.strip()] if proc.returncode != 0 else []
    errors += [str(e) for e in data.get("ServerErrors") or []]
    if errors:
        return dict(result, error="; ".join(e for e in errors if e))
    parse = docker_info if module.params["engine"] == "docker" else podman_info
    info = parse(data)
    return dict(result, running=True, nvidia_runtime="nvidia" in info["runtimes"], **info)


def run_once_argv(params, name):
    """The `run --rm` argv of a throwaway container: env names, per-host flags, command."""
    argv = ["run", "--rm", "--name", name]
    for key in sorted(set(params["env"]) | set(params["secret_env"])):
        argv += ["-e", key]
    argv += list(params["engine_args"])
    return argv + [params["image"]] + list(params["command"])


def action_run_once(module, engine):
    """Run a throwaway container to its end (bounded); its exit code and output."""
    params = module.params
    name = params["name"] or "cosmos-once-%d-%d" % (os.getpid(), int(time.time() * 1000))
    values = dict(params["env"], **params["secret_env"])
    engine.env = dict(engine.env, **dict((k, str(v)) for k, v in values.items()))
    proc = engine.call(run_once_argv(params, name), check=False, timeout=params["timeout"])
    if proc is None:
        engine.call(["rm", "-f", name], check=False)
        return dict(changed=False, exit_code=None, stdout="", stderr="", timed_out=True)
    return dict(
        changed=False,
        exit_code=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        timed_out=False,
    )
