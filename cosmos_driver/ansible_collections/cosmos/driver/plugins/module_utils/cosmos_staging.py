"""Make a job's run directory ready on its host: the folders, the spec file, and which
inputs the host's content-addressed store still lacks. cosmos_container's `run` action calls
this before it starts the container, so a job's launch is one module run when the host holds
its inputs (the usual case after a host's first job)."""

import os
import shutil
import tempfile
import time

# The host contract's file names (the driver's cosmos_driver/host_contract.py passes them
# through the role; these defaults are the same, for a play run by hand).
SPEC_NAME = "spec.json"
BUNDLE_NAME = "collected.tar"
EXIT_NAME = "container-exit.json"
BUNDLE_MAX_AGE = 600


class StagingError(Exception):
    """The run cannot be staged on this host (the message says why and what to do)."""


def stage_run(
    run_dir,
    spec,
    inputs_dir,
    input_names,
    folders=(),
    parent_outputs=None,
    spec_name=SPEC_NAME,
    bundle_name=BUNDLE_NAME,
    exit_name=EXIT_NAME,
):
    """Stage a run: drop an earlier attempt's leftovers, create the folders, write the spec.
    Returns changed, missing_inputs (names to upload, in the job's order) and spec_path."""
    if parent_outputs and not os.path.isdir(parent_outputs):
        raise StagingError(
            "the parent run's outputs are not on this host (%s): run the parent here first"
            % parent_outputs
        )
    # What an earlier attempt of the run left: its exit and its collected tar must not stand
    # for this attempt's (a retry stages again; the container has not started yet).
    cleared = remove_stale(run_dir, (os.path.join("logs", exit_name), bundle_name))
    prune_old_bundles(os.path.dirname(run_dir), bundle_name)
    run_folders = [os.path.join(run_dir, "outputs"), os.path.join(run_dir, "logs")]
    created = ensure_folders(list(folders) + [inputs_dir] + run_folders)
    spec_path = os.path.join(run_dir, spec_name)
    written = write_if_changed(spec_path, spec)
    missing = [n for n in input_names if not os.path.isfile(os.path.join(inputs_dir, n))]
    return dict(changed=created or written or cleared, missing_inputs=missing, spec_path=spec_path)


def ensure_folders(paths):
    """Create missing folders; True when one was created."""
    created = False
    for path in paths:
        if not os.path.isdir(path):
            os.makedirs(path, 0o755, exist_ok=True)
            created = True
    return created


def remove_stale(run_dir, stale):
    """Remove what an earlier attempt left (the `stale` files: its exit, its tar; and its
    outputs: an old video must not pass for this attempt's); True when something was removed."""
    removed = False
    for name in stale:
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            os.unlink(path)
            removed = True
    outputs = os.path.join(run_dir, "outputs")
    if os.path.isdir(outputs) and os.listdir(outputs):
        shutil.rmtree(outputs)
        removed = True
    return removed


def prune_old_bundles(runs_dir, bundle_name=BUNDLE_NAME, now=None):
    """Remove other runs' collect tars older than BUNDLE_MAX_AGE seconds: each is a second
    copy of a run's outputs, fetched seconds after it was written. A run whose tar was never
    fetched (its driver died) gets a new one from the next collect, which rebuilds it from
    outputs/ and logs/. Returns how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    if not os.path.isdir(runs_dir):
        return removed
    for entry in os.scandir(runs_dir):
        bundle = os.path.join(entry.path, bundle_name)
        try:
            if now - os.stat(bundle).st_mtime > BUNDLE_MAX_AGE:
                os.unlink(bundle)
                removed += 1
        except OSError:
            continue  # no tar there, or another stage removed it first
    return removed


def write_if_changed(path, content):
    """Write content atomically unless the file already holds it; True when written."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as current:
            if current.read() == data:
                return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".spec.", dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True
