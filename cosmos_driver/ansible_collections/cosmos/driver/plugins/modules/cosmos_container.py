#!/usr/bin/python
"""The one place that spells out container-engine command lines (docker and podman alike).

Every command is an argv list; nothing goes through a shell. Architecture tests forbid
engine command text anywhere else in the Ansible content or the driver."""

DOCUMENTATION = r"""
module: cosmos_container
short_description: Run, wait for, log, stop, remove, import and build containers
description:
  - Drives docker or podman on the managed host with argv lists (no shell).
  - C(run) is idempotent by name, so a job whose container already exists is re-attached,
    never started twice.
  - C(engine_info) is read-only and never fails for an absent or stopped engine; it says so.
  - C(run_once) runs a throwaway C(run --rm) container (a smoke test) and returns its exit
    code and output; a container still running after I(timeout) seconds is removed.
options:
  action:
    description: What to do.
    required: true
    type: str
    choices: [run, wait, logs, stop, remove, collect, find, image_info, import, build,
      engine_info, run_once]
  engine:
    description: The container engine CLI.
    type: str
    default: docker
    choices: [docker, podman]
  engine_env:
    description: Environment for the engine CLI (for example DOCKER_HOST).
    type: dict
    default: {}
  name:
    description: Container name (run, wait, logs, stop, remove).
    type: str
  image:
    description: Image reference (run, image_info, import, build).
    type: str
  command:
    description: Container command as a list (run).
    type: list
    elements: str
    default: []
  env:
    description: Container environment (run).
    type: dict
    default: {}
  secret_env:
    description:
      - Container environment that holds secrets (run). Values are never logged, and like
        I(env) they reach the engine CLI through its environment, never its command line.
    type: dict
    default: {}
  labels:
    description: Labels for run, build; the label filter for find.
    type: dict
    default: {}
  mounts:
    description: Bind mounts as C(src:dst[:ro]) (run).
    type: list
    elements: str
    default: []
  workdir:
    description: Working directory in the container (run).
    type: str
  engine_args:
    description: Extra engine flags for run, per host (GPU flags, --ipc=host, --network).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for the container to exit (wait, run_once), for the C(after)
      containers to exit before starting (run), or for the engine to answer (engine_info).
    type: int
    default: 60
  stage:
    description:
      - Stage the job's run directory before a C(run) (module_utils cosmos_staging) - drop
        an earlier attempt's leftovers, create the folders, write the spec. When the input
        store lacks an input, nothing starts and C(missing_inputs) names what to upload;
        run again after the upload. A container that exists already is re-attached without
        staging (its outputs are left alone).
    type: dict
    suboptions:
      run_dir: {description: The run's folder on the host., type: path, required: true}
      spec: {description: Content of spec.json in run_dir., type: str, required: true}
      inputs_dir: {description: The content-addressed input store., type: path, required: true}
      input_names:
        description: File names the job needs in inputs_dir.
        type: list
        elements: str
        default: []
      folders:
        description: Host-wide folders the job mounts.
        type: list
        elements: path
        default: []
      parent_outputs:
        description: A dependent run's parent outputs folder, which must exist.
        type: path
      spec_name: {description: The spec's file name in run_dir., type: str, default: spec.json}
      bundle_name:
        description: The collect tar's file name in run_dir (an earlier attempt's is removed).
        type: str
        default: collected.tar
      exit_name:
        description: The saved exit's file name in run_dir/logs (an earlier attempt's is removed).
        type: str
        default: container-exit.json
  after:
    description:
      - Containers that must have exited before this one starts (run). They hold the GPUs
        this container gets; waiting here, on the host, hands the GPUs over without a
        round trip to the driver. A name that does not exist counts as exited.
    type: list
    elements: str
    default: []
  tail:
    description: Lines of the container log returned as C(log_tail) (wait).
    type: int
    default: 0
  grace:
    description: Seconds between SIGTERM and SIGKILL (stop).
    type: int
    default: 10
  dest:
    description: File to save the container log into (logs, collect); tarball to import
      (import).
    type: path
  exit_name:
    description: File name of the exit C(collect) saves beside the log.
    type: str
    default: container-exit.json
  bundle:
    description:
      - Tar file C(collect) writes with the files of list_dir and of the log's folder, as
        C(outputs/NAME) and C(logs/NAME), so that one fetch brings the run home.
    type: path
  collect_when_done:
    description:
      - With C(wait), collect the container (as C(collect) does) in the same run once it has
        exited or is gone.
    type: bool
    default: false
  list_dir:
    description:
      - Folder whose files C(collect) lists once the container is gone (the job's outputs),
        so that the end of a job costs one module run rather than four.
    type: path
  context:
    description: Build context folder (build).
    type: path
  build_args:
    description: Build arguments (build).
    type: dict
    default: {}
  dockerfile:
    description: Dockerfile to build, an absolute path (build); default C(context)/Dockerfile.
    type: path
  network:
    description:
      - Network of the build's RUN steps (build). C(none) builds offline; an empty string
        leaves the engine's default, for builds that download packages.
    type: str
    default: none
  build_timeout:
    description: Seconds a build may take before it is stopped and reported failed (build).
    type: int
    default: 3600
author: cosmos-driver
"""

RETURN = r"""
container_id: {description: Full id of the container (run, wait), type: str, returned: when found}
exists: {description: Whether the container or image exists, type: bool, returned: always}
finished: {description: The container has exited (wait), type: bool, returned: wait}
started: {description: The container runs or ran (run), type: bool, returned: run}
missing_inputs:
  description: Inputs to upload before the container can start (run with stage).
  type: list
  returned: run with stage
started_at: {description: When the container started, engine time (wait), type: str, returned: wait}
finished_at: {description: When it exited, engine time (wait), type: str, returned: when finished}
log_tail: {description: Last lines of the container log (wait), type: list, returned: wait}
exit_code: {description: The exit code (wait, run_once), type: int, returned: when finished}
oom_killed: {description: Killed for memory (wait), type: bool, returned: when finished}
containers:
  description: Containers matching the labels (find), each with id, name, state and labels.
  type: list
  returned: find
image_labels: {description: Labels of the image (image_info), type: dict, returned: image_info}
image_id: {description: Id of the image (image_info, build), type: str, returned: when it exists}
files: {description: Paths of the files in list_dir (collect), type: list, returned: collect}
bundle: {description: The tar written (collect with bundle), type: str, returned: when bundled}
bundle_size: {description: Size of the tar in bytes, type: int, returned: when bundled}
bundle_sha256: {description: SHA-256 of the tar (cosmos_fetch), type: str, returned: when bundled}
collected: {description: The wait collected the container too, type: bool, returned: when collected}
still_running: {description: The container runs (logs), type: bool, returned: logs}
installed:
  description: The engine CLI is on the host (engine_info).
  type: bool
  returned: engine_info
running:
  description: The engine answers this user (engine_info).
  type: bool
  returned: engine_info
error:
  description: Why the engine is not usable, empty when it is (engine_info).
  type: str
  returned: engine_info
version:
  description: The engine's server version (engine_info).
  type: str
  returned: when running
runtimes:
  description: OCI runtimes the engine offers (engine_info).
  type: list
  returned: when running
default_runtime:
  description: The engine's default runtime (engine_info).
  type: str
  returned: when running
nvidia_runtime:
  description: An C(nvidia) runtime is configured (engine_info).
  type: bool
  returned: engine_info
rootless:
  description: The engine runs rootless (engine_info).
  type: bool
  returned: when running
stdout:
  description: The throwaway container's stdout (run_once).
  type: str
  returned: run_once
stderr:
  description: Its stderr, with the engine's own errors (run_once).
  type: str
  returned: run_once
timed_out:
  description: It ran past I(timeout) and was removed; C(exit_code) is then null (run_once).
  type: bool
  returned: run_once
"""

import hashlib
import json
import os
import subprocess
import tarfile
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_staging import (
    StagingError,
    stage_run,
)


class Engine:
    """Argv builders and runners for one engine CLI."""

    def __init__(self, module):
        self.module = module
        # engine_info reports a missing CLI instead of failing on it.
        required = module.params["action"] != "engine_info"
        self.cli = module.get_bin_path(module.params["engine"], required=required)
        self.env = dict((k, str(v)) for k, v in module.params["engine_env"].items())

    def call(self, args, check=True, timeout=None):
        argv = [self.cli] + list(args)
        env = dict(os.environ)
        env.update(self.env)
        try:
            proc = subprocess.run(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None
        if check and proc.returncode != 0:
            self.module.fail_json(
                msg="%s %s failed: %s"
                % (self.module.params["engine"], args[0], proc.stderr.strip()),
                rc=proc.returncode,
            )
        return proc

    def inspect_container(self, name):
        proc = self.call(["container", "inspect", name], check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)[0]

    def inspect_image(self, image):
        proc = self.call(["image", "inspect", image], check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)[0]


def run_argv(params):
    """The `run -d` argv for a job container: labels, mounts, env names, per-host flags."""
    argv = ["run", "-d", "--name", params["name"]]
    for key, value in sorted(params["labels"].items()):
        argv += ["--label", "%s=%s" % (key, value)]
    for mount in params["mounts"]:
        argv += ["-v", mount]
    for key in sorted(set(params["env"]) | set(params["secret_env"])):
        argv += ["-e", key]
    if params["workdir"]:
        argv += ["-w", params["workdir"]]
    argv += list(params["engine_args"])
    return argv + [params["image"]] + list(params["command"])


def wait_for_exit(engine, names, timeout):
    """Block until every named container has exited (or does not exist); False on timeout."""
    deadline = time.time() + timeout
    for name in names:
        state = engine.inspect_container(name)
        if state is None or state["State"]["Status"] in ("exited", "dead", "created"):
            continue
        left = deadline - time.time()
        if left <= 0 or engine.call(["wait", name], check=False, timeout=left) is None:
            return False
    return True


def action_run(module, engine):
    """Re-attach to the container if it exists; otherwise stage (when asked), wait for the
    `after` containers to exit, and start it detached."""
    params = module.params
    existing = engine.inspect_container(params["name"])
    if existing is not None:
        return dict(
            changed=False, exists=True, started=True, container_id=existing["Id"], reattached=True
        )
    if module.check_mode:
        return dict(changed=True, exists=False, started=False)
    staged = stage(module)
    if staged["missing_inputs"] or not wait_for_exit(engine, params["after"], params["timeout"]):
        return dict(staged, exists=False, started=False)
    # Values travel in the CLI's environment, never on its command line (ps shows argv).
    saved = engine.env
    values = dict(params["env"], **params["secret_env"])
    engine.env = dict(saved, **dict((k, str(v)) for k, v in values.items()))
    proc = engine.call(run_argv(params))
    engine.env = saved
    return dict(
        staged,
        changed=True,
        exists=True,
        started=True,
        container_id=proc.stdout.strip(),
        reattached=False,
    )


def stage(module):
    """Stage the run directory when the task asks for it (the `stage` option)."""
    wanted = module.params["stage"]
    if not wanted:
        return dict(changed=False, missing_inputs=[])
    try:
        staged = stage_run(**wanted)
    except StagingError as exc:
        module.fail_json(msg=str(exc))
    return dict(changed=staged["changed"], missing_inputs=staged["missing_inputs"])


def action_wait(module, engine):
    """Wait (bounded) for the container to exit; with collect_when_done, collect it in the
    same module run once it has exited or is gone (one module run fewer per job). A collect
    reuses the state the wait saw and reads the log tail from the log it saved, so the end
    of a job costs as few engine calls as it can."""
    params = module.params
    state, exited = wait_for_container(engine, params["name"], params["timeout"])
    if not (params["collect_when_done"] and (state is None or exited)):
        tail = log_tail(engine, params["name"], params["tail"]) if state else []
        return wait_result(state, exited, tail)
    if not params["dest"]:
        module.fail_json(msg="collect_when_done needs dest (where the log is saved)")
    collected = collect_container(module, engine, state)
    result = wait_result(state, exited, file_tail(params["dest"], params["tail"]) if state else [])
    bundle = dict((k, v) for k, v in collected.items() if k.startswith("bundle"))
    changed = collected["changed"]
    return dict(result, changed=changed, collected=True, files=collected["files"], **bundle)


def wait_for_container(engine, name, timeout):
    """The container's state after waiting up to `timeout` seconds for it to exit (None when
    it does not exist), and whether it has exited."""
    if engine.inspect_container(name) is None:
        return None, False
    proc = engine.call(["wait", name], check=False, timeout=timeout)
    state = engine.inspect_container(name)
    exited = state is not None and state["State"]["Status"] in ("exited", "dead")
    return state, proc is not None and exited


def wait_result(state, exited, tail):
    """What a wait reports of the state it saw."""
    if state is None:
        return dict(changed=False, exists=False, finished=False)
    result = dict(
        changed=False,
        exists=True,
        container_id=state["Id"],
        started_at=state["State"].get("StartedAt"),
        log_tail=tail,
        finished=exited,
    )
    if not exited:
        return result
    return dict(
        result,
        exit_code=int(state["State"]["ExitCode"]),
        finished_at=state["State"].get("FinishedAt"),
        oom_killed=bool(state["State"].get("OOMKilled")),
    )


def file_tail(path, lines):
    """The last `lines` lines of a saved log (the log collect wrote)."""
    if lines <= 0 or not os.path.isfile(path):
        return []
    with open(path, "rb") as handle:
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:]


def log_tail(engine, name, lines):
    """The last `lines` lines of the container log (stdout, then stderr)."""
    if lines <= 0:
        return []
    proc = engine.call(["logs", "--tail", str(lines), name], check=False)
    if proc.returncode != 0:
        return []
    return (proc.stdout + proc.stderr).splitlines()[-lines:]


def action_logs(module, engine):
    """Save the container's stdout and stderr, interleaved, into dest (atomically)."""
    name, dest = module.params["name"], module.params["dest"]
    state = engine.inspect_container(name)
    if state is None:
        return dict(changed=False, exists=False, still_running=False)
    save_log(module, engine, name, dest)
    running = bool(state["State"]["Running"])
    return dict(changed=True, exists=True, still_running=running, dest=dest)


def save_log(module, engine, name, dest):
    """Stream `logs` of an existing container into dest through a temp file in its folder."""
    folder = os.path.dirname(dest)
    if not os.path.isdir(folder):
        os.makedirs(folder)
    fd, tmp = tempfile.mkstemp(prefix=".log.", dir=folder)
    env = dict(os.environ)
    env.update(engine.env)
    with os.fdopen(fd, "w") as out:
        rc = subprocess.call(
            [engine.cli, "logs", name], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    if rc != 0:
        os.unlink(tmp)
        module.fail_json(msg="%s logs %s failed (rc %d)" % (module.params["engine"], name, rc))
    os.rename(tmp, dest)


def action_stop(module, engine):
    name = module.params["name"]
    state = engine.inspect_container(name)
    if state is None or not state["State"]["Running"]:
        return dict(changed=False, exists=state is not None)
    if not module.check_mode:
        engine.call(["stop", "-t", str(module.params["grace"]), name])
    return dict(changed=True, exists=True)


def action_remove(module, engine):
    name = module.params["name"]
    if engine.inspect_container(name) is None:
        return dict(changed=False, exists=False)
    if not module.check_mode:
        engine.call(["rm", "-f", name])
    return dict(changed=True, exists=False)


def save_exit(state, folder, name):
    """Write the container's exit (from its inspected state) beside its log, so it outlives
    the container: a driver that dies mid-collect learns the exit code from this file."""
    exit_ = dict(
        exit_code=int(state["State"]["ExitCode"]),
        started_at=state["State"].get("StartedAt"),
        finished_at=state["State"].get("FinishedAt"),
        oom_killed=bool(state["State"].get("OOMKilled")),
    )
    fd, tmp = tempfile.mkstemp(prefix=".exit.", dir=folder)
    with os.fdopen(fd, "w") as out:
        json.dump(exit_, out)
    os.rename(tmp, os.path.join(folder, name))


def action_collect(module, engine):
    """The end of a container's life in one run: stop it if it still runs, save its log and
    its exit, remove it, and list the files it left in list_dir."""
    return collect_container(module, engine, engine.inspect_container(module.params["name"]))


def collect_container(module, engine, state):
    """Collect given the container's last inspected state (None: it is gone)."""
    name, dest = module.params["name"], module.params["dest"]
    stopped = state is not None and state["State"]["Running"]
    if state is not None:
        state = finish_container(module, engine, state)
        save_log(module, engine, name, dest)
        save_exit(state, os.path.dirname(dest), module.params["exit_name"])
        if not module.check_mode:
            engine.call(["rm", "-f", name])
    files = top_level_files(module.params["list_dir"])
    exists = state is not None
    result = dict(changed=exists, exists=exists, stopped=stopped, files=files)
    if module.params["bundle"]:
        log_folder = os.path.dirname(module.params["dest"])
        size, digest = write_bundle(module.params["bundle"], files + top_level_files(log_folder))
        result.update(bundle=module.params["bundle"], bundle_size=size, bundle_sha256=digest)
    return result


def finish_container(module, engine, state):
    """Stop a running container (SIGTERM, SIGKILL after the grace); its final state."""
    if not state["State"]["Running"] or module.check_mode:
        return state
    name = module.params["name"]
    engine.call(["stop", "-t", str(module.params["grace"]), name])
    return engine.inspect_container(name) or state


def top_level_files(folder):
    """The regular files directly in folder (none when it does not exist)."""
    if not folder or not os.path.isdir(folder):
        return []
    return sorted(e.path for e in os.scandir(folder) if e.is_file(follow_symlinks=False))


def write_bundle(path, files):
    """One uncompressed tar of the given files as <their folder name>/<name>, written
    atomically: a single fetch brings a run home instead of one fetch per file. Returns its
    size and SHA-256, which the fetch checks instead of asking the host again."""
    fd, tmp = tempfile.mkstemp(prefix=".bundle.", dir=os.path.dirname(path))
    with os.fdopen(fd, "w+b") as raw:
        with tarfile.open(fileobj=raw, mode="w") as bundle:
            for name in files:
                bundle.add(name, arcname=bundle_name(name), recursive=False)
        size, digest = file_digest(raw)
    os.rename(tmp, path)
    return size, digest


def bundle_name(path):
    """A file's name in the tar: <its folder's name>/<its name> (outputs/x, logs/y)."""
    return "%s/%s" % (os.path.basename(os.path.dirname(path)), os.path.basename(path))


def file_digest(handle):
    """Size and SHA-256 of an open file, read from its start in 4 MiB blocks."""
    handle.seek(0)
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: handle.read(4 << 20), b""):
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


def action_find(module, engine):
    argv = ["ps", "-a", "--no-trunc", "--format", "{{json .}}"]
    for key, value in sorted(module.params["labels"].items()):
        argv += ["--filter", "label=%s=%s" % (key, value)]
    proc = engine.call(argv)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    containers = [
        dict(
            id=r.get("ID") or r.get("Id"),
            name=r.get("Names"),
            state=r.get("State"),
            labels=row_labels(r),
        )
        for r in rows
    ]
    return dict(changed=False, exists=bool(containers), containers=containers)


def row_labels(row):
    """A `ps --format json` row's labels as a dict: docker gives "k=v,k2=v2", podman a map."""
    labels = row.get("Labels") or {}
    if isinstance(labels, dict):
        return labels
    pairs = (item.split("=", 1) for item in str(labels).split(",") if "=" in item)
    return dict(pairs)


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


# Literals, not dict(import=...): `import` is a keyword, and ansible-doc warns on any
# module-level assignment to a subscript.
ACTIONS = {
    "run": action_run,
    "wait": action_wait,
    "logs": action_logs,
    "stop": action_stop,
    "remove": action_remove,
    "collect": action_collect,
    "find": action_find,
    "image_info": action_image_info,
    "build": action_build,
    "import": action_import,
    "engine_info": action_engine_info,
    "run_once": action_run_once,
}

REQUIRED = {
    "run": ["name", "image"],
    "wait": ["name"],
    "logs": ["name", "dest"],
    "stop": ["name"],
    "remove": ["name"],
    "collect": ["name", "dest"],
    "image_info": ["image"],
    "build": ["image", "context"],
    "import": ["image", "dest"],
    "run_once": ["image"],
}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=sorted(ACTIONS)),
            engine=dict(type="str", default="docker", choices=["docker", "podman"]),
            engine_env=dict(type="dict", default={}),
            name=dict(type="str"),
            image=dict(type="str"),
            command=dict(type="list", elements="str", default=[]),
            env=dict(type="dict", default={}),
            secret_env=dict(type="dict", default={}, no_log=True),
            labels=dict(type="dict", default={}),
            mounts=dict(type="list", elements="str", default=[]),
            workdir=dict(type="str"),
            engine_args=dict(type="list", elements="str", default=[]),
            timeout=dict(type="int", default=60),
            after=dict(type="list", elements="str", default=[]),
            stage=dict(
                type="dict",
                options=dict(
                    run_dir=dict(type="path", required=True),
                    spec=dict(type="str", required=True),
                    inputs_dir=dict(type="path", required=True),
                    input_names=dict(type="list", elements="str", default=[]),
                    folders=dict(type="list", elements="path", default=[]),
                    parent_outputs=dict(type="path"),
                    spec_name=dict(type="str", default="spec.json"),
                    bundle_name=dict(type="str", default="collected.tar"),
                    exit_name=dict(type="str", default="container-exit.json"),
                ),
            ),
            tail=dict(type="int", default=0),
            grace=dict(type="int", default=10),
            dest=dict(type="path"),
            exit_name=dict(type="str", default="container-exit.json"),
            list_dir=dict(type="path"),
            collect_when_done=dict(type="bool", default=False),
            bundle=dict(type="path"),
            context=dict(type="path"),
            build_args=dict(type="dict", default={}),
            dockerfile=dict(type="path"),
            network=dict(type="str", default="none"),
            build_timeout=dict(type="int", default=3600),
        ),
        required_if=[("action", name, fields) for name, fields in REQUIRED.items()],
        supports_check_mode=True,
    )
    engine = Engine(module)
    module.exit_json(**ACTIONS[module.params["action"]](module, engine))


if __name__ == "__main__":
    main()
