#!/usr/bin/python
"""Verify a checkpoint tree against a manifest (path, size, sha256), or hash one into a manifest.

Runs on the GPU host, stdlib only. The work is in its module_utils: cosmos_checkpoint_tree
(the walk, the hashing, the stamp) and cosmos_checkpoint_verify (the comparison, the
messages). Several files are hashed at once (hashlib releases the GIL on large updates) with
large reads into one reused buffer per thread. A stamp file keeps (size, mtime_ns, inode) ->
sha256 of every file that matched, so an unchanged tree is re-verified with one stat per file
and no read."""

DOCUMENTATION = r"""
module: cosmos_checkpoints
short_description: Verify a checkpoint tree against a manifest, or hash a tree into one
description:
  - C(verify) walks I(root) and compares it with I(files). It names every missing file,
    wrong size, wrong sha256 and unexpected file. Sizes are checked before any hashing.
  - Files are hashed several at a time with large reads. A stamp file
    C(<root>/.cosmos-verify-stamp.json) remembers the sha256 of each file that matched, keyed by
    size, mtime_ns and inode, so an unchanged tree is re-verified without reading it.
  - A file modified less than 2 seconds before the verification started is not stamped (its
    mtime could be reused by a later write in the same clock tick), so it is hashed again next
    time.
  - C(manifest) hashes every file under I(root) and returns them as manifest entries.
  - Never reports a change; the stamp is a cache, not managed state.
options:
  action:
    description: What to do.
    type: str
    default: verify
    choices: [verify, manifest]
  root:
    description: The checkpoint directory; manifest paths are relative to it.
    type: path
    required: true
  files:
    description:
      - The manifest's entries (required for verify), each a dict with C(path) (relative to
        I(root), POSIX, without C(..)), C(size) (bytes) and C(sha256) (64 hex digits).
      - Checked by the module itself rather than as suboptions, which Ansible validates
        entry by entry several times slower than the verification of an unchanged tree.
    type: list
    elements: dict
  ignore:
    description:
      - Globs, relative to I(root), of files that are neither checked nor reported as unexpected.
        As in Python's fnmatch, C(*) also matches C(/); C(dir/**) skips a whole folder.
    type: list
    elements: str
    default: []
  full:
    description: Ignore the stamp and hash every file (verify).
    type: bool
    default: false
  workers:
    description: Files hashed at once; 0 means one per CPU.
    type: int
    default: 0
  stamp:
    description: Read and write the stamp file (verify).
    type: bool
    default: true
  fail_on_problems:
    description: Fail, naming every problem file, when the tree does not match (verify).
    type: bool
    default: true
author: cosmos-driver
"""

EXAMPLES = r"""
- name: Verify the checkpoints against the profile's manifest
  cosmos_checkpoints:
    root: /srv/cosmos/checkpoints
    files: "{{ cosmos_checkpoints_manifest.files }}"
    ignore: "{{ cosmos_checkpoints_manifest.ignore }}"

- name: Hash a verified tree into manifest entries
  cosmos_checkpoints:
    action: manifest
    root: /srv/cosmos/checkpoints
    ignore: [".cache/**", "**/.cache/**"]
  register: hashed
"""

RETURN = r"""
ok: {description: The tree matches the manifest (verify), type: bool, returned: verify}
missing: {description: Manifest paths absent under root (verify), type: list, returned: verify}
wrong_size:
  description: Files of the wrong size, as {path, expected, actual} in bytes (verify)
  type: list
  returned: verify
wrong_hash:
  description: Files of the right size and wrong content, as {path, expected, actual} (verify)
  type: list
  returned: verify
unexpected:
  description: Files under root that are not in the manifest and not ignored (verify)
  type: list
  returned: verify
unreadable:
  description: Files or folders that could not be read, as {path, error}
  type: list
  returned: always
files:
  description: Number of manifest entries (verify); the entries {path, size, sha256} sorted by
    path (manifest)
  type: raw
  returned: always
bytes:
  description: Bytes the manifest lists (verify) or the tree holds (manifest)
  type: int
  returned: always
hashed: {description: Files read and hashed in this run, type: int, returned: always}
from_stamp:
  description: Files whose sha256 came from the stamp, not read (verify)
  type: int
  returned: verify
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_checkpoint_verify import (
    Verification,
    build_manifest,
    normalize_entries,
    problem_message,
)


def run_verify(module):
    params = module.params
    files, errors = normalize_entries(params["files"])
    # Echo the options without the (possibly thousands of) entries: Ansible would copy and
    # scan every one of them for secrets before printing them back.
    invocation = dict(module_args=dict(params, files="%d entries" % len(files)))
    if errors:
        module.fail_json(msg="bad manifest entries: " + "; ".join(errors), invocation=invocation)
    root = params["root"]
    if os.path.exists(root) and not os.path.isdir(root):
        module.fail_json(msg="%s is not a directory" % root, invocation=invocation)
    verification = Verification(
        root, files, params["ignore"], params["full"], params["workers"], params["stamp"]
    )
    result = verification.run(write=not module.check_mode)
    if not result["ok"] and params["fail_on_problems"]:
        module.fail_json(msg=problem_message(root, result), invocation=invocation, **result)
    module.exit_json(invocation=invocation, **result)


def run_manifest(module):
    root = module.params["root"]
    if not os.path.isdir(root):
        module.fail_json(msg="%s is not a directory" % root)
    result = build_manifest(root, module.params["ignore"], module.params["workers"])
    if result["unreadable"]:
        message = "; ".join("%s (%s)" % (i["path"], i["error"]) for i in result["unreadable"])
        module.fail_json(msg="cannot read under %s: %s" % (root, message), **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", default="verify", choices=["verify", "manifest"]),
            root=dict(type="path", required=True),
            files=dict(type="list", elements="dict"),
            ignore=dict(type="list", elements="str", default=[]),
            full=dict(type="bool", default=False),
            workers=dict(type="int", default=0),
            stamp=dict(type="bool", default=True),
            fail_on_problems=dict(type="bool", default=True),
        ),
        required_if=[("action", "verify", ["files"])],
        supports_check_mode=True,
    )
    if module.params["workers"] < 0:
        module.fail_json(msg="workers must be 0 (one per CPU) or more")
    if module.params["action"] == "verify":
        run_verify(module)
    run_manifest(module)


if __name__ == "__main__":
    main()
