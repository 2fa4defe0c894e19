"""cosmos_container's actions on a job's container: run (staged, after the containers that
hold its GPUs), wait (optionally collecting), logs, stop, remove, collect (with the one tar a
fetch brings home), find, and script (the same run as a shell script, for a Slurm job). Each
takes the module and an Engine (module_utils cosmos_engine) and returns the module's result."""

import hashlib
import json
import os
import shlex
import tarfile
import tempfile
import time

from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_engine import (
    log_tail,
    save_log,
)
from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_staging import (
    StagingError,
    stage_run,
)


def run_argv(params, detach=True):
    """The `run -d` argv for a job container: labels, mounts, env names, per-host flags
    (in the foreground without `detach`, as a script's container runs)."""
    argv = ["run", "-d", "--name", params["name"]] if detach else ["run", "--name", params["name"]]
    for key, value in sorted(params["labels"].items()):
        argv += ["--label", "%s=%s" % (key, value)]
    for mount in params["mounts"]:
        argv += ["-v", mount]
    names = set(params["env"]) | set(params["secret_env"]) | set(params.get("inherit_env") or [])
    for key in sorted(names):
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


def action_script(module, engine):
    """Stage the run (when asked) and write `script`: a shell script that runs the same
    container as `run` in the foreground, saves its log and its exit beside it and removes it.
    A batch scheduler's job runs it on whatever node it gets (the engine CLI by name)."""
    staged = stage(module)
    if staged["missing_inputs"] or module.check_mode:
        return dict(staged, written=False)
    text = script_text(module.params, engine.env)
    path = module.params["script"]
    old = None
    if os.path.isfile(path):
        with open(path) as handle:
            old = handle.read()
    if old != text:
        with open(path + ".tmp", "w") as out:
            out.write(text)
        os.rename(path + ".tmp", path)
    return dict(staged, changed=staged["changed"] or old != text, written=True, script=path)


SCRIPT_END = """pid=$!
while :; do wait "$pid"; code=$?; kill -0 "$pid" 2>/dev/null || break; done
finished=$(date -u +%%Y-%%m-%%dT%%H:%%M:%%S.%%NZ)
%(rm)s >/dev/null 2>&1
printf '{"exit_code": %%d, "started_at": "%%s", "finished_at": "%%s", "oom_killed": false}\\n' \\
  "$code" "$started" "$finished" > %(exit)s.tmp && mv %(exit)s.tmp %(exit)s
exit "$code"
"""


def script_text(params, engine_env):
    """The script of `action_script`: engine and job environment exported (values never on
    a command line), inherited names (CUDA_VISIBLE_DEVICES from the scheduler) left as set."""
    cli, name = params["engine"], params["name"]
    logs = os.path.join(params["stage"]["run_dir"] if params["stage"] else ".", "logs")
    exit_path = shlex.quote(os.path.join(logs, params["exit_name"]))
    rm = " ".join(shlex.quote(a) for a in [cli, "rm", "-f", name])
    stop = " ".join(shlex.quote(a) for a in [cli, "stop", "-t", str(params["grace"]), name])
    values = dict(engine_env, **dict((k, str(v)) for k, v in params["env"].items()))
    lines = ["#!/bin/bash", "# Written by cosmos_container (action script).", "set -u"]
    lines += ["export %s=%s" % (k, shlex.quote(v)) for k, v in sorted(values.items())]
    lines += [
        "rm -f %s" % exit_path,
        "%s >/dev/null 2>&1" % rm,
        "trap %s TERM INT" % shlex.quote(stop + " >/dev/null 2>&1"),
        "started=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)",
        "%s > %s 2>&1 &"
        % (
            " ".join(shlex.quote(a) for a in [cli] + run_argv(params, detach=False)),
            shlex.quote(os.path.join(logs, params["log_name"])),
        ),
    ]
    return "\n".join(lines) + "\n" + SCRIPT_END % dict(rm=rm, exit=exit_path)


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


def action_logs(module, engine):
    """Save the container's stdout and stderr, interleaved, into dest (atomically)."""
    name, dest = module.params["name"], module.params["dest"]
    state = engine.inspect_container(name)
    if state is None:
        return dict(changed=False, exists=False, still_running=False)
    save_log(module, engine, name, dest)
    running = bool(state["State"]["Running"])
    return dict(changed=True, exists=True, still_running=running, dest=dest)


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
