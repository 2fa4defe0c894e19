"""cosmos_checkpoints' comparison of a tree with a manifest (the stamp keeps unchanged files
from being read again), the one-line message naming every problem, the check of the
manifest's entries, and the hashing of a tree into a manifest."""

import os
import re
import time

from ansible_collections.cosmos.driver.plugins.module_utils.cosmos_checkpoint_tree import (
    hash_files,
    load_stamp,
    scan,
    stamped_sha256,
    write_stamp,
)

# A file whose mtime is this close to the start of a run is "racy": a write in the same clock
# tick after we read it could leave size and mtime unchanged, so it is not stamped.
RACY_NS = 2 * 10**9


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
