#!/usr/bin/python
"""Verify a checkpoint tree against a manifest (path, size, sha256), or hash one into a manifest.

Runs on the GPU host, stdlib only. Several files are hashed at once (hashlib releases the GIL
on large updates) with large reads into one reused buffer per thread. A stamp file keeps
(size, mtime_ns, inode) -> sha256 of every file that matched, so an unchanged tree is
re-verified with one stat per file and no read."""

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

import concurrent.futures
import fnmatch
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time

from ansible.module_utils.basic import AnsibleModule

STAMP_NAME = ".cosmos-verify-stamp.json"
STAMP_SCHEMA = 1
# 4 MiB reads: on a 2-core host (1.3 GB, page cache warm, 2 threads) 1 to 4 MiB were the
# fastest, 8 and 16 MiB 10-30 % slower, hashlib.file_digest (256 KiB) as fast as 4 MiB.
READ_SIZE = 4 * 1024 * 1024
# A file whose mtime is this close to the start of a run is "racy": a write in the same clock
# tick after we read it could leave size and mtime unchanged, so it is not stamped.
RACY_NS = 2 * 10**9


def ignore_matcher(patterns):
    """A function telling whether a path relative to root (file or folder) matches an ignore
    glob; C(dir/**) also matches C(dir) itself, so the walk skips the whole folder."""
    globs = list(patterns) + [p[:-3] for p in patterns if p.endswith("/**")]
    if not globs:
        return lambda rel: False
    return re.compile("|".join("(?:%s)" % fnmatch.translate(g) for g in globs)).match


def scan(root, patterns, errors=None):
    """Map every regular file under `root` (relative POSIX path) to (size, mtime_ns, inode).

    One stat per file, no open. Symlinks to files count as files; symlinked folders are not
    followed (no loops). The stamp file and its temporary files are left out. A folder that
    cannot be listed goes into `errors` ({path: reason}) when given."""
    ignored = ignore_matcher(patterns)
    found = {}
    pending = [("", root)]
    while pending:
        prefix, folder = pending.pop()
        listing = open_folder(folder, prefix, errors)
        if listing is None:
            continue
        with listing as entries:
            for entry in entries:
                rel = prefix + entry.name
                if (not prefix and entry.name.startswith(STAMP_NAME)) or ignored(rel):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append((rel + "/", entry.path))
                    continue
                try:
                    info = entry.stat()
                except OSError:
                    continue  # a dangling symlink: absent
                if stat.S_ISREG(info.st_mode):
                    found[rel] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return found


def open_folder(folder, prefix, errors):
    """os.scandir(folder), or None with the reason in `errors` (raised when errors is None)."""
    try:
        return os.scandir(folder)
    except OSError as exc:
        if errors is None:
            raise
        errors[prefix.rstrip("/") or "."] = exc.strerror or str(exc)
        return None


_local = threading.local()


def sha256_file(path):
    """The sha256 of one file, read in READ_SIZE chunks into this thread's reused buffer."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = memoryview(bytearray(READ_SIZE))
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(buffer[:count])
    return digest.hexdigest()


def hash_files(root, paths, sizes, workers):
    """Hash `paths` (relative to root) in parallel, largest first so the big files do not
    finish last alone. Returns ({path: sha256}, {path: error text})."""
    digests, errors = {}, {}
    if not paths:
        return digests, errors
    order = sorted(paths, key=lambda rel: -sizes[rel])
    workers = min(workers or os.cpu_count() or 1, len(order))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = dict((pool.submit(sha256_file, os.path.join(root, rel)), rel) for rel in order)
        for future in concurrent.futures.as_completed(futures):
            rel = futures[future]
            try:
                digests[rel] = future.result()
            except OSError as exc:
                errors[rel] = exc.strerror or str(exc)
    return digests, errors


def stamp_path(root):
    return os.path.join(root, STAMP_NAME)


def load_stamp(root):
    """The stamp's entries, or {} when it is absent, unreadable or of another schema."""
    try:
        with open(stamp_path(root)) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != STAMP_SCHEMA:
        return {}
    entries = data.get("files")
    return entries if isinstance(entries, dict) else {}


def write_stamp(root, entries):
    """Replace the stamp atomically (temporary file in root, then os.replace)."""
    text = json.dumps(dict(schema=STAMP_SCHEMA, files=entries), sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=STAMP_NAME + ".", dir=root)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, stamp_path(root))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def stamped_sha256(stamp, rel, facts):
    """The stamp's sha256 for `rel` when its size, mtime_ns and inode are unchanged."""
    entry = stamp.get(rel)
    if not isinstance(entry, dict):
        return None
    size, mtime_ns, inode = facts
    if (entry.get("size"), entry.get("mtime_ns"), entry.get("inode")) != (size, mtime_ns, inode):
        return None
    return entry.get("sha256")


class Verification:
    """One comparison of a tree with a manifest; `run()` returns the module's result."""

    def __init__(self, root, files, ignore, full=False, workers=0, stamp=True):
        self.root = root
        # path -> (size, sha256 in lowercase)
        self.expected = dict((f["path"], (f["size"], f["sha256"].lower())) for f in files)
        self.full = full
        self.workers = workers
        self.use_stamp = stamp
        self.stamp_error = None
        self.started_ns = time.time_ns()
        self.unlisted = {}
        self.tree = scan(root, ignore, self.unlisted) if os.path.isdir(root) else {}

    def run(self, write=True):
        tree, expected = self.tree, self.expected
        present = [rel for rel in sorted(expected) if rel in tree]
        sized = [rel for rel in present if tree[rel][0] == expected[rel][0]]
        stamp = {} if self.full or not self.use_stamp else load_stamp(self.root)
        digests = self.from_stamp(stamp, sized)
        from_stamp = len(digests)
        fresh, errors = hash_files(
            self.root,
            [rel for rel in sized if rel not in digests],
            dict((rel, tree[rel][0]) for rel in sized),
            self.workers,
        )
        digests.update(fresh)
        errors.update(self.unlisted)
        wrong = [rel for rel in sized if rel in digests and digests[rel] != expected[rel][1]]
        if write and self.use_stamp and os.path.isdir(self.root):
            self.save_stamp(stamp, digests, set(wrong), bool(fresh))
        result = dict(
            changed=False,
            missing=[rel for rel in sorted(expected) if rel not in tree],
            wrong_size=[
                dict(path=rel, expected=expected[rel][0], actual=tree[rel][0])
                for rel in present
                if tree[rel][0] != expected[rel][0]
            ],
            wrong_hash=[
                dict(path=rel, expected=expected[rel][1], actual=digests[rel]) for rel in wrong
            ],
            unexpected=sorted(rel for rel in tree if rel not in expected),
            unreadable=[dict(path=rel, error=errors[rel]) for rel in sorted(errors)],
            files=len(expected),
            bytes=sum(size for size, _ in expected.values()),
            hashed=len(fresh),
            from_stamp=from_stamp,
        )
        result["ok"] = not any(result[key] for key in PROBLEM_KEYS)
        if self.stamp_error:
            result["stamp_error"] = self.stamp_error
        return result

    def from_stamp(self, stamp, paths):
        """{path: sha256} for the files whose stamp entry still matches size, mtime, inode."""
        digests = {}
        for rel in paths:
            known = stamped_sha256(stamp, rel, self.tree[rel])
            if known is not None:
                digests[rel] = known
        return digests

    def save_stamp(self, old, digests, wrong, hashed_any):
        """Stamp every file that matched and is not racy; write only when that changed."""
        if not hashed_any and not wrong and len(digests) == len(old):
            return  # every entry came from the stamp, and every stamp entry is still used
        entries = {}
        for rel, sha in digests.items():
            size, mtime_ns, inode = self.tree[rel]
            if rel in wrong or mtime_ns > self.started_ns - RACY_NS:
                continue
            entries[rel] = dict(size=size, mtime_ns=mtime_ns, inode=inode, sha256=sha)
        if entries != old:
            try:
                write_stamp(self.root, entries)
            except OSError as exc:
                # The stamp is a cache: a read-only tree (an NFS export, say) verifies
                # without one, hashing every file each time.
                self.stamp_error = "verification stamp not written: %s" % exc


PROBLEM_KEYS = ("missing", "wrong_size", "wrong_hash", "unexpected", "unreadable")


def problem_message(root, result):
    """One line naming every problem file, e.g. '2 checkpoint problems under /x: missing a;
    wrong sha256 b (expected ..., got ...)'."""
    parts = ["missing %s" % rel for rel in result["missing"]]
    parts += [
        "wrong size %s (expected %d bytes, got %d)" % (i["path"], i["expected"], i["actual"])
        for i in result["wrong_size"]
    ]
    parts += [
        "wrong sha256 %s (expected %s, got %s)" % (i["path"], i["expected"], i["actual"])
        for i in result["wrong_hash"]
    ]
    parts += ["unexpected %s" % rel for rel in result["unexpected"]]
    parts += ["unreadable %s (%s)" % (i["path"], i["error"]) for i in result["unreadable"]]
    noun = "problem" if len(parts) == 1 else "problems"
    message = "%d checkpoint %s under %s: %s" % (len(parts), noun, root, "; ".join(parts))
    if result["unexpected"]:
        message += " (remove unexpected files, or list them as `ignore:` globs in the manifest)"
    return message


SHA256 = re.compile(r"[0-9a-fA-F]{64}\Z")


def normalize_entries(files):
    """The manifest entries as {path, size, sha256 (lowercase)}, and what is wrong with them:
    paths relative, POSIX, without '..', each once; sizes whole numbers >= 0; hex digests."""
    entries, errors, seen = [], [], set()
    for index, item in enumerate(files):
        entry, problems = normalize_entry(item)
        errors += ["files[%d].%s" % (index, text) for text in problems]
        if entry is None:
            continue
        if entry["path"] in seen:
            errors.append("files[%d].path %r: listed twice" % (index, entry["path"]))
        seen.add(entry["path"])
        entries.append(entry)
    return entries, errors


def normalize_entry(item):
    rel, size, sha = item.get("path"), item.get("size"), item.get("sha256")
    problems = []
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in rel.split("/"):
        problems.append("path %r: must be relative, without '..'" % (rel,))
    try:
        size = int(size)
    except (TypeError, ValueError):
        size = -1
    if size < 0 or isinstance(item.get("size"), bool):
        problems.append("size %r: must be a number of bytes, 0 or more" % (item.get("size"),))
    if not isinstance(sha, str) or not SHA256.match(sha):
        problems.append("sha256 %r: must be 64 hex digits" % (sha,))
    if problems:
        return None, problems
    return dict(path=rel, size=size, sha256=sha.lower()), []


def build_manifest(root, ignore, workers=0):
    """Hash every file under `root` (no stamp): the module's result for action=manifest."""
    unlisted = {}
    tree = scan(root, list(ignore), unlisted)
    sizes = dict((rel, facts[0]) for rel, facts in tree.items())
    digests, errors = hash_files(root, list(tree), sizes, workers)
    errors.update(unlisted)
    files = [dict(path=rel, size=sizes[rel], sha256=digests[rel]) for rel in sorted(digests)]
    return dict(
        changed=False,
        files=files,
        bytes=sum(sizes[rel] for rel in digests),
        hashed=len(digests),
        unreadable=[dict(path=rel, error=errors[rel]) for rel in sorted(errors)],
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
