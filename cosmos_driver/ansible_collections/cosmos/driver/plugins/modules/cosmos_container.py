#!/usr/bin/python
"""The container module: its documentation, options and dispatch to the actions.

Its engine command lines (docker and podman alike) are spelled in its module_utils:
cosmos_engine (the CLI, inspect, logs), cosmos_job_container (a job's container) and
cosmos_engine_setup (images, engine_info, run_once); Ansible ships them with the module.
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
  - C(script) stages like C(run) and writes I(script), a shell script that runs the same
    container in the foreground (a Slurm job runs it on its node), saves its log and exit.
  - C(run_once) runs a throwaway C(run --rm) container (a smoke test) and returns its exit
    code and output; a container still running after I(timeout) seconds is removed.
options:
  action:
    description: What to do.
    required: true
    type: str
    choices: [run, wait, logs, stop, remove, collect, find, script, image_info, import, build,
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
  script:
    description: The shell script C(script) writes (the run's container, for a Slurm job).
    type: path
  inherit_env:
    description: Names the script's container takes from the job's environment (script).
    type: list
    elements: str
    default: []
  log_name:
    description: File name of the container log the script writes in the run's logs/.
    type: str
    default: container.log
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
written: {description: The script was written (script), type: bool, returned: script}
script: {description: The script's path (script), type: str, returned: when written}
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_engine import Engine
from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_engine_setup import (
    action_build,
    action_engine_info,
    action_image_info,
    action_import,
    action_run_once,
)
from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_job_container import (
    action_collect,
    action_find,
    action_logs,
    action_remove,
    action_run,
    action_script,
    action_stop,
    action_wait,
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
    "script": action_script,
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
    "script": ["name", "image", "script"],
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
            script=dict(type="path"),
            inherit_env=dict(type="list", elements="str", default=[]),
            log_name=dict(type="str", default="container.log"),
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
