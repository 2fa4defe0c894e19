#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Make a job's run directory ready on its host in one module run: the folders, the spec
file, and which inputs the host's content-addressed store still lacks. One run instead of
six (a `file` loop, a `copy` per file) is what keeps per-job overhead off the GPUs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cosmos_stage
short_description: Prepare a Cosmos job's run directory and report missing inputs
description:
  - Creates the host-wide folders and the run's C(outputs) and C(logs) folders.
  - Writes the spec file atomically when its content differs.
  - Reports the input names (sha256 file names) not yet in the input store, so that only
    those are uploaded.
options:
  run_dir:
    description: The run's folder on the host.
    required: true
    type: path
  folders:
    description: Host-wide folders the job mounts (input store, caches).
    type: list
    elements: path
    default: []
  spec:
    description: Content of the spec file (spec.json in run_dir).
    required: true
    type: str
  inputs_dir:
    description: The content-addressed input store.
    required: true
    type: path
  input_names:
    description: File names the job needs in inputs_dir.
    type: list
    elements: str
    default: []
author: cosmos-driver
"""

EXAMPLES = r"""
- name: Stage the run
  cosmos_stage:
    run_dir: /var/lib/cosmos/runs/r-123
    folders: [/var/lib/cosmos/inputs, /var/lib/cosmos/hf-cache]
    spec: "{{ lookup('ansible.builtin.file', 'spec.json') }}"
    inputs_dir: /var/lib/cosmos/inputs
    input_names: [3f0c...e1.mp4]
  register: staged
"""

RETURN = r"""
missing_inputs:
  description: Input names the store lacks; upload these.
  type: list
  returned: always
spec_path:
  description: Where the spec was written.
  type: str
  returned: always
"""

import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

SPEC_NAME = "spec.json"
# What an earlier attempt of the run left: its exit and its collected tar must not stand for
# this attempt's (a retry stages again; the container has not started yet).
BUNDLE_NAME = "collected.tar"
STALE = ("logs/container-exit.json", BUNDLE_NAME)
BUNDLE_MAX_AGE = 600


def ensure_folders(paths):
    """Create missing folders; True when one was created."""
    created = False
    for path in paths:
        if not os.path.isdir(path):
            os.makedirs(path, 0o755, exist_ok=True)
            created = True
    return created


def remove_stale(run_dir):
    """Remove what an earlier attempt left (its exit, its tar, its outputs: an old video must
    not pass for this attempt's); True when something was removed."""
    removed = False
    for name in STALE:
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            os.unlink(path)
            removed = True
    outputs = os.path.join(run_dir, "outputs")
    if os.path.isdir(outputs) and os.listdir(outputs):
        shutil.rmtree(outputs)
        removed = True
    return removed


def prune_old_bundles(runs_dir, now=None):
    """Remove other runs' collect tars older than BUNDLE_MAX_AGE seconds: each is a second
    copy of a run's outputs, fetched seconds after it was written. A run whose tar was never
    fetched (its driver died) gets a new one from the next collect, which rebuilds it from
    outputs/ and logs/. Returns how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    if not os.path.isdir(runs_dir):
        return removed
    for entry in os.scandir(runs_dir):
        bundle = os.path.join(entry.path, BUNDLE_NAME)
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_dir=dict(type="path", required=True),
            folders=dict(type="list", elements="path", default=[]),
            spec=dict(type="str", required=True),
            inputs_dir=dict(type="path", required=True),
            input_names=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=False,
    )
    params = module.params
    run_dir = params["run_dir"]
    folders = params["folders"] + [
        params["inputs_dir"],
        os.path.join(run_dir, "outputs"),
        os.path.join(run_dir, "logs"),
    ]
    cleared = remove_stale(run_dir)
    prune_old_bundles(os.path.dirname(run_dir))
    created = ensure_folders(folders)
    spec_path = os.path.join(run_dir, SPEC_NAME)
    written = write_if_changed(spec_path, params["spec"])
    missing = [
        name
        for name in params["input_names"]
        if not os.path.isfile(os.path.join(params["inputs_dir"], name))
    ]
    changed = created or written or cleared
    module.exit_json(changed=changed, missing_inputs=missing, spec_path=spec_path)


if __name__ == "__main__":
    main()
