#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The one place that spells out container-engine command lines (docker and podman alike).

Every command is an argv list; nothing goes through a shell. Architecture tests forbid
engine command text anywhere else in the Ansible content or the driver."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cosmos_container
short_description: Run, wait for, log, stop, remove, import and build containers
description:
  - Drives docker or podman on the managed host with argv lists (no shell).
  - C(run) is idempotent by name, so a job whose container already exists is re-attached,
    never started twice.
options:
  action:
    description: What to do.
    required: true
    type: str
    choices: [run, wait, logs, stop, remove, find, image_info, import, build]
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
    description: Seconds to wait for the container to exit (wait), or for the C(after)
      containers to exit before starting (run).
    type: int
    default: 60
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
    description: File to save the container log into (logs); tarball to import (import).
    type: path
  context:
    description: Build context folder (build).
    type: path
  build_args:
    description: Build arguments (build).
    type: dict
    default: {}
author: cosmos-driver
"""

RETURN = r"""
container_id: {description: Full id of the container (run, wait), type: str, returned: when found}
exists: {description: Whether the container or image exists, type: bool, returned: always}
finished: {description: The container has exited (wait), type: bool, returned: wait}
started: {description: The container runs or ran (run), type: bool, returned: run}
started_at: {description: When the container started, engine time (wait), type: str, returned: wait}
finished_at: {description: When it exited, engine time (wait), type: str, returned: when finished}
log_tail: {description: Last lines of the container log (wait), type: list, returned: wait}
exit_code: {description: The container's exit code (wait), type: int, returned: when finished}
oom_killed: {description: Killed for memory (wait), type: bool, returned: when finished}
containers: {description: Containers matching the labels (find), type: list, returned: find}
image_labels: {description: Labels of the image (image_info), type: dict, returned: image_info}
"""

import json
import os
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule


class Engine(object):
    """Argv builders and runners for one engine CLI."""

    def __init__(self, module):
        self.module = module
        self.cli = module.get_bin_path(module.params["engine"], required=True)
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
                universal_newlines=True,
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
    params = module.params
    existing = engine.inspect_container(params["name"])
    if existing is not None:
        return dict(
            changed=False, exists=True, started=True, container_id=existing["Id"], reattached=True
        )
    if module.check_mode:
        return dict(changed=True, exists=False, started=False)
    if not wait_for_exit(engine, params["after"], params["timeout"]):
        return dict(changed=False, exists=False, started=False)
    # Values travel in the CLI's environment, never on its command line (ps shows argv).
    saved = engine.env
    values = dict(params["env"], **params["secret_env"])
    engine.env = dict(saved, **dict((k, str(v)) for k, v in values.items()))
    proc = engine.call(run_argv(params))
    engine.env = saved
    return dict(
        changed=True, exists=True, started=True, container_id=proc.stdout.strip(), reattached=False
    )


def action_wait(module, engine):
    name = module.params["name"]
    if engine.inspect_container(name) is None:
        return dict(changed=False, exists=False, finished=False)
    proc = engine.call(["wait", name], check=False, timeout=module.params["timeout"])
    state = engine.inspect_container(name)
    if state is None:
        return dict(changed=False, exists=False, finished=False)
    result = dict(
        changed=False,
        exists=True,
        container_id=state["Id"],
        started_at=state["State"].get("StartedAt"),
        log_tail=log_tail(engine, name, module.params["tail"]),
    )
    if proc is None or state["State"]["Status"] not in ("exited", "dead"):
        return dict(result, finished=False)
    return dict(
        result,
        finished=True,
        exit_code=int(state["State"]["ExitCode"]),
        finished_at=state["State"].get("FinishedAt"),
        oom_killed=bool(state["State"].get("OOMKilled")),
    )


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
    if engine.inspect_container(name) is None:
        return dict(changed=False, exists=False)
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
    return dict(changed=True, exists=True, dest=dest)


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


def action_find(module, engine):
    argv = ["ps", "-a", "--no-trunc", "--format", "{{json .}}"]
    for key, value in sorted(module.params["labels"].items()):
        argv += ["--filter", "label=%s=%s" % (key, value)]
    proc = engine.call(argv)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    containers = [
        dict(id=r.get("ID") or r.get("Id"), name=r.get("Names"), state=r.get("State")) for r in rows
    ]
    return dict(changed=False, exists=bool(containers), containers=containers)


def action_image_info(module, engine):
    image = engine.inspect_image(module.params["image"])
    if image is None:
        return dict(changed=False, exists=False, image_labels={})
    labels = (image.get("Config") or {}).get("Labels") or {}
    return dict(changed=False, exists=True, image_labels=labels)


def action_import(module, engine):
    image = module.params["image"]
    if engine.inspect_image(image) is not None:
        return dict(changed=False, exists=True)
    if not module.check_mode:
        engine.call(["import", module.params["dest"], image])
    return dict(changed=True, exists=True)


def action_build(module, engine):
    params = module.params
    argv = ["build", "--network", "none", "-t", params["image"]]
    for key, value in sorted(params["build_args"].items()):
        argv += ["--build-arg", "%s=%s" % (key, value)]
    for key, value in sorted(params["labels"].items()):
        argv += ["--label", "%s=%s" % (key, value)]
    if not module.check_mode:
        engine.call(argv + [params["context"]])
    return dict(changed=True, exists=True)


ACTIONS = dict(
    run=action_run,
    wait=action_wait,
    logs=action_logs,
    stop=action_stop,
    remove=action_remove,
    find=action_find,
    image_info=action_image_info,
    build=action_build,
)
ACTIONS["import"] = action_import

REQUIRED = dict(
    run=["name", "image"],
    wait=["name"],
    logs=["name", "dest"],
    stop=["name"],
    remove=["name"],
    image_info=["image"],
    build=["image", "context"],
)
REQUIRED["import"] = ["image", "dest"]


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
            tail=dict(type="int", default=0),
            grace=dict(type="int", default=10),
            dest=dict(type="path"),
            context=dict(type="path"),
            build_args=dict(type="dict", default={}),
        ),
        required_if=[("action", name, fields) for name, fields in REQUIRED.items()],
        supports_check_mode=True,
    )
    engine = Engine(module)
    module.exit_json(**ACTIONS[module.params["action"]](module, engine))


if __name__ == "__main__":
    main()
