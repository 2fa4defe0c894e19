"""The container engine's CLI, docker or podman, as cosmos_container drives it: every
command an argv list run without a shell, values passed in the CLI's environment (never on its
command line), and the inspect and log calls the actions share."""

import json
import os
import subprocess
import tempfile


class Engine:
    """Argv builders and runners for one engine CLI."""

    def __init__(self, module):
        self.module = module
        # engine_info reports a missing CLI instead of failing on it; a script runs the CLI
        # on a Slurm node, not here.
        required = module.params["action"] not in ("engine_info", "script")
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


def log_tail(engine, name, lines):
    """The last `lines` lines of the container log (stdout, then stderr)."""
    if lines <= 0:
        return []
    proc = engine.call(["logs", "--tail", str(lines), name], check=False)
    if proc.returncode != 0:
        return []
    return (proc.stdout + proc.stderr).splitlines()[-lines:]


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
