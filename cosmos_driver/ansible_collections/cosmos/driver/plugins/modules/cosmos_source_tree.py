#!/usr/bin/python
"""Digest and pack a local source checkout, so the image role can sync it to a host with
ansible-core modules only and label the image with the content it was built from.

Runs on the controller (delegate_to: localhost); stdlib only."""

DOCUMENTATION = r"""
module: cosmos_source_tree
short_description: Digest or pack a source tree (the image role's local source)
description:
  - C(digest) hashes every file's relative path, executable bit and content, in a fixed
    order, into one sha256; the same tree always gives the same digest.
  - C(archive) writes the same files into a gzip tarball at I(dest).
  - Names matching I(exclude) are left out (and not descended into).
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [digest, archive]
  path:
    description: The source tree.
    type: path
    required: true
  exclude:
    description:
      - Glob patterns; one without a slash matches a file or folder name at any depth, one
        with a slash matches its path relative to I(path).
    type: list
    elements: str
    default: []
  dest:
    description: The tarball to write (archive).
    type: path
author: cosmos-driver
"""

EXAMPLES = r"""
- name: Digest a local Cosmos checkout
  cosmos_source_tree:
    action: digest
    path: /home/me/cosmos-transfer1
    exclude: [.git, __pycache__, checkpoints]
  delegate_to: localhost
  register: tree
"""

RETURN = r"""
digest: {description: sha256 of the tree (digest), type: str, returned: digest}
files: {description: Number of files in the tree, type: int, returned: always}
dest: {description: The tarball written (archive), type: str, returned: archive}
"""

import fnmatch
import hashlib
import os
import stat
import tarfile
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

CHUNK = 1 << 20


def excluded(relative, patterns):
    """Whether a path relative to the tree's root matches one of the exclude patterns."""
    text = relative.as_posix()
    return any(
        fnmatch.fnmatchcase(text if "/" in pattern else relative.name, pattern)
        for pattern in patterns
    )


def tree_files(root, patterns):
    """Regular files under root, sorted by relative path, excluded names pruned."""
    found = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not excluded((base / d).relative_to(root), patterns))
        for name in files:
            relative = (base / name).relative_to(root)
            if (base / name).is_file() and not excluded(relative, patterns):
                found.append(relative)
    return sorted(found, key=lambda p: p.as_posix())


def executable(path):
    return bool(path.stat().st_mode & stat.S_IXUSR)


def digest_tree(root, files):
    """One sha256 over (path, executable bit, size, content) of every file, in order."""
    total = hashlib.sha256()
    for relative in files:
        path = root / relative
        header = f"{relative.as_posix()}\0{executable(path):d}\0{path.stat().st_size}\0"
        total.update(header.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                total.update(chunk)
    return total.hexdigest()


def archive_tree(root, files, dest):
    """A gzip tarball of the files, written beside dest and renamed into place."""
    partial = Path(f"{dest}.partial")
    with tarfile.open(str(partial), "w:gz") as tar:
        for relative in files:
            tar.add(str(root / relative), arcname=relative.as_posix(), recursive=False)
    partial.replace(dest)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["digest", "archive"]),
            path=dict(type="path", required=True),
            exclude=dict(type="list", elements="str", default=[]),
            dest=dict(type="path"),
        ),
        required_if=[("action", "archive", ["dest"])],
        supports_check_mode=True,
    )
    root = Path(module.params["path"])
    if not root.is_dir():
        module.fail_json(msg=f"source tree {root} is not a folder")
    files = tree_files(root, module.params["exclude"])
    if module.params["action"] == "digest":
        module.exit_json(changed=False, digest=digest_tree(root, files), files=len(files))
    if not module.check_mode:
        archive_tree(root, files, Path(module.params["dest"]))
    module.exit_json(changed=True, dest=module.params["dest"], files=len(files))


if __name__ == "__main__":
    main()
