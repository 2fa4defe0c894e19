"""The checkpoint module: verify a real temp tree against a manifest, the stamp, manifests.

The module's functions run in-process on real files; a few tests run the module file itself
as Ansible does (arguments in a JSON file), to see its result and failure message."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.cosmos.driver.plugins.module_utils import (
    cosmos_checkpoint_tree as checkpoint_tree,
)
from ansible_collections.cosmos.driver.plugins.module_utils import (
    cosmos_checkpoint_verify as checkpoint_verify,
)

from cosmos_driver.content import COLLECTION, COLLECTIONS_PATH

MODULE = COLLECTION / "plugins" / "modules" / "cosmos_checkpoints.py"

# Old enough that a later write always moves the mtime (the module's racy-file rule).
SETTLED_NS = 1_600_000_000 * 10**9


def write(root: Path, rel: str, data: bytes, settled: bool = True) -> dict:
    """Write a file under root and return its manifest entry; settled files get an old mtime."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if settled:
        os.utime(path, ns=(SETTLED_NS, SETTLED_NS))
    return {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A checkpoint tree of three files and its manifest."""
    root = tmp_path / "checkpoints"
    files = [
        write(root, "nvidia/Model/base_model.pt", b"base" * 1000),
        write(root, "nvidia/Model/edge_control.pt", b"edge" * 300),
        write(root, "google-t5/t5-11b/config.json", b"{}"),
    ]
    return root, files


def verify(root: Path, files: list[dict], **options) -> dict:
    ignore = options.pop("ignore", [])
    return checkpoint_verify.Verification(str(root), files, ignore, **options).run()


def test_an_intact_tree_is_ok_and_every_file_is_hashed(tree):
    root, files = tree
    result = verify(root, files)
    assert result["ok"] is True
    assert result["changed"] is False
    assert (result["files"], result["hashed"], result["from_stamp"]) == (3, 3, 0)
    assert result["bytes"] == 4000 + 1200 + 2
    for key in ("missing", "wrong_size", "wrong_hash", "unexpected", "unreadable"):
        assert result[key] == []


def test_missing_wrong_size_wrong_hash_and_unexpected_are_each_named(tree):
    root, files = tree
    (root / "nvidia/Model/base_model.pt").unlink()
    (root / "nvidia/Model/edge_control.pt").write_bytes(b"short")
    write(root, "google-t5/t5-11b/config.json", b"[]")
    write(root, "stray/file.bin", b"x")
    result = verify(root, files)
    assert result["ok"] is False
    assert result["missing"] == ["nvidia/Model/base_model.pt"]
    assert result["wrong_size"] == [
        {"path": "nvidia/Model/edge_control.pt", "expected": 1200, "actual": 5}
    ]
    assert result["wrong_hash"] == [
        {
            "path": "google-t5/t5-11b/config.json",
            "expected": files[2]["sha256"],
            "actual": hashlib.sha256(b"[]").hexdigest(),
        }
    ]
    assert result["unexpected"] == ["stray/file.bin"]
    assert result["hashed"] == 1, "a file of the wrong size is not hashed"


def test_the_failure_message_names_every_problem_file(tree):
    root, files = tree
    (root / "nvidia/Model/base_model.pt").unlink()
    write(root, "google-t5/t5-11b/config.json", b"[]")
    message = checkpoint_verify.problem_message(str(root), verify(root, files))
    assert message.startswith(f"2 checkpoint problems under {root}: ")
    assert "missing nvidia/Model/base_model.pt" in message
    assert (
        f"wrong sha256 google-t5/t5-11b/config.json (expected {files[2]['sha256']}, "
        f"got {hashlib.sha256(b'[]').hexdigest()})"
    ) in message


def test_ignored_globs_and_the_stamp_are_not_unexpected(tree):
    root, files = tree
    write(root, ".cache/huggingface/x.lock", b"")
    write(root, "nvidia/Model/.cache/huggingface/download/base_model.pt.metadata", b"m")
    write(root, "nvidia/Model/notes.tmp", b"t")
    result = verify(root, files, ignore=[".cache/**", "**/.cache/**", "*.tmp"])
    assert (root / checkpoint_tree.STAMP_NAME).exists()
    assert result["unexpected"] == []
    assert result["ok"] is True


def test_without_ignore_globs_those_files_are_unexpected(tree):
    root, files = tree
    write(root, "nvidia/Model/.cache/huggingface/x.lock", b"")
    assert verify(root, files)["unexpected"] == ["nvidia/Model/.cache/huggingface/x.lock"]


def test_an_unchanged_tree_is_verified_from_the_stamp_without_hashing(tree):
    root, files = tree
    assert verify(root, files)["hashed"] == 3
    again = verify(root, files)
    assert (again["ok"], again["hashed"], again["from_stamp"]) == (True, 0, 3)


def test_content_changed_with_the_same_size_is_found_despite_the_stamp(tree):
    root, files = tree
    verify(root, files)
    path = root / "nvidia/Model/edge_control.pt"
    path.write_bytes(b"EDGE" * 300)  # same size; the write moves the mtime to now
    result = verify(root, files)
    assert [item["path"] for item in result["wrong_hash"]] == ["nvidia/Model/edge_control.pt"]
    assert result["hashed"] == 1


def test_a_wrong_file_is_not_stamped_so_it_stays_wrong(tree):
    root, files = tree
    write(root, "nvidia/Model/edge_control.pt", b"EDGE" * 300)
    assert verify(root, files)["wrong_hash"]
    again = verify(root, files)
    assert [item["path"] for item in again["wrong_hash"]] == ["nvidia/Model/edge_control.pt"]
    assert again["hashed"] == 1


def test_a_file_replaced_with_the_same_size_and_mtime_is_rehashed_by_inode(tree):
    root, files = tree
    verify(root, files)
    path = root / "nvidia/Model/base_model.pt"
    replacement = root / "replacement"
    replacement.write_bytes(b"BASE" * 1000)
    os.utime(replacement, ns=(SETTLED_NS, SETTLED_NS))
    replacement.replace(path)
    result = verify(root, files)
    assert [item["path"] for item in result["wrong_hash"]] == ["nvidia/Model/base_model.pt"]
    assert (result["hashed"], result["from_stamp"]) == (1, 2)


def test_full_ignores_the_stamp(tree):
    root, files = tree
    verify(root, files)
    result = verify(root, files, full=True)
    assert (result["ok"], result["hashed"], result["from_stamp"]) == (True, 3, 0)


def test_a_rewrite_that_restores_size_mtime_and_inode_is_caught_only_by_full(tree):
    root, files = tree
    verify(root, files)
    write(root, "nvidia/Model/base_model.pt", b"BASE" * 1000)  # in place, old mtime put back
    assert verify(root, files)["ok"] is True, "the stamp is trusted when size/mtime/inode match"
    assert [i["path"] for i in verify(root, files, full=True)["wrong_hash"]] == [
        "nvidia/Model/base_model.pt"
    ]


def test_recently_modified_files_are_not_stamped(tree):
    root, files = tree
    files[2] = write(root, "google-t5/t5-11b/config.json", b"{}", settled=False)
    verify(root, files)
    stamp = json.loads((root / checkpoint_tree.STAMP_NAME).read_text())
    assert sorted(stamp["files"]) == ["nvidia/Model/base_model.pt", "nvidia/Model/edge_control.pt"]
    assert verify(root, files)["hashed"] == 1


def test_the_stamp_keeps_only_files_that_matched(tree):
    root, files = tree
    write(root, "nvidia/Model/edge_control.pt", b"EDGE" * 300)
    verify(root, files)
    stamp = json.loads((root / checkpoint_tree.STAMP_NAME).read_text())
    assert sorted(stamp["files"]) == ["google-t5/t5-11b/config.json", "nvidia/Model/base_model.pt"]
    verify(root, files[:1])
    stamp = json.loads((root / checkpoint_tree.STAMP_NAME).read_text())
    facts = (root / "nvidia/Model/base_model.pt").stat()
    assert stamp == {
        "schema": 1,
        "files": {
            "nvidia/Model/base_model.pt": {
                "size": 4000,
                "mtime_ns": facts.st_mtime_ns,
                "inode": facts.st_ino,
                "sha256": files[0]["sha256"],
            }
        },
    }


def test_no_stamp_option_neither_reads_nor_writes_it(tree):
    root, files = tree
    result = verify(root, files, stamp=False)
    assert not (root / checkpoint_tree.STAMP_NAME).exists()
    assert verify(root, files, stamp=False)["hashed"] == result["hashed"] == 3


def test_a_missing_root_reports_every_file_missing(tmp_path):
    files = [{"path": "a/b.pt", "size": 1, "sha256": "0" * 64}]
    result = verify(tmp_path / "absent", files)
    assert (result["ok"], result["missing"]) == (False, ["a/b.pt"])


def test_symlinked_files_count_and_dangling_links_are_missing(tree):
    root, files = tree
    blob = root.parent / "blob"
    blob.write_bytes(b"edge" * 300)
    (root / "nvidia/Model/edge_control.pt").unlink()
    (root / "nvidia/Model/edge_control.pt").symlink_to(blob)
    assert verify(root, files)["ok"] is True
    blob.unlink()
    assert verify(root, files)["missing"] == ["nvidia/Model/edge_control.pt"]


def test_only_regular_files_count(tree):
    root, files = tree
    os.mkfifo(root / "nvidia/Model/pipe")  # reading it would block forever
    (root / "empty-folder").mkdir()
    result = verify(root, files)
    assert (result["ok"], result["unexpected"]) == (True, [])


def test_a_folder_that_cannot_be_listed_is_named(tmp_path):
    unlisted: dict = {}
    assert checkpoint_tree.scan(str(tmp_path / "gone"), [], unlisted) == {}
    assert unlisted == {".": "No such file or directory"}
    with pytest.raises(FileNotFoundError):
        checkpoint_tree.scan(str(tmp_path / "gone"), [])


def test_many_workers_and_one_worker_agree(tree):
    root, files = tree
    for number in range(40):
        files.append(write(root, f"many/f{number:02d}.bin", os.urandom(1000 + number)))
    for workers in (1, 8):
        result = verify(root, files, workers=workers, stamp=False)
        assert (result["ok"], result["hashed"]) == (True, 43)


def test_hashes_equal_hashlib_on_a_file_larger_than_one_read(tmp_path):
    data = os.urandom(checkpoint_tree.READ_SIZE * 2 + 12345)
    (tmp_path / "big").write_bytes(data)
    assert checkpoint_tree.sha256_file(str(tmp_path / "big")) == hashlib.sha256(data).hexdigest()


def test_manifest_action_hashes_every_file_sorted_without_ignored_or_stamp(tree):
    root, files = tree
    verify(root, files)
    write(root, ".cache/huggingface/x.lock", b"lock")
    result = checkpoint_verify.build_manifest(str(root), [".cache/**"])
    assert result["files"] == sorted(files, key=lambda f: f["path"])
    assert (result["hashed"], result["bytes"], result["changed"]) == (3, 5202, False)


def test_bad_entries_are_refused_before_anything_is_read():
    entries, errors = checkpoint_verify.normalize_entries(
        [
            {"path": "/abs/a.pt", "size": 1, "sha256": "a" * 64},
            {"path": "x/../y.pt", "size": -1, "sha256": "xyz"},
            {"path": "ok.pt", "size": "12", "sha256": "A" * 64},
            {"path": "ok.pt", "size": True, "sha256": "a" * 65},
            {"path": "ok.pt", "size": 1, "sha256": "a" * 64},
        ]
    )
    assert errors == [
        "files[0].path '/abs/a.pt': must be relative, without '..'",
        "files[1].path 'x/../y.pt': must be relative, without '..'",
        "files[1].size -1: must be a number of bytes, 0 or more",
        "files[1].sha256 'xyz': must be 64 hex digits",
        "files[3].size True: must be a number of bytes, 0 or more",
        f"files[3].sha256 '{'a' * 65}': must be 64 hex digits",
        "files[4].path 'ok.pt': listed twice",
    ]
    assert entries[0] == {"path": "ok.pt", "size": 12, "sha256": "a" * 64}


def run_module(tmp_path: Path, args: dict) -> tuple[int, dict]:
    """Run the module file as Ansible runs it, with its arguments in a JSON file and its
    module_utils importable by their full name, as AnsiballZ ships them (only the
    ansible_collections package is put on the path)."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    shipped = tmp_path / "shipped"
    shipped.mkdir(exist_ok=True)
    if not (shipped / "ansible_collections").exists():
        (shipped / "ansible_collections").symlink_to(COLLECTIONS_PATH / "ansible_collections")
    path = [str(shipped), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    done = subprocess.run(
        [sys.executable, str(MODULE), str(args_file)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    return done.returncode, json.loads(done.stdout)


def test_the_module_fails_naming_the_problems_and_still_returns_the_lists(tree, tmp_path):
    root, files = tree
    (root / "nvidia/Model/base_model.pt").unlink()
    files[1]["size"] = str(files[1]["size"])  # as a Jinja template may hand it over
    rc, result = run_module(tmp_path, {"root": str(root), "files": files})
    assert rc == 1
    assert result["invocation"]["module_args"]["files"] == "3 entries"
    assert result["failed"] is True
    assert result["msg"] == f"1 checkpoint problem under {root}: missing nvidia/Model/base_model.pt"
    assert result["missing"] == ["nvidia/Model/base_model.pt"]
    assert result["changed"] is False


def test_the_module_reports_without_failing_when_asked(tree, tmp_path):
    root, files = tree
    write(root, "stray.bin", b"s")
    rc, result = run_module(
        tmp_path, {"root": str(root), "files": files, "fail_on_problems": False}
    )
    assert (rc, result.get("failed"), result["ok"]) == (0, None, False)
    assert result["unexpected"] == ["stray.bin"]


def test_the_module_needs_files_to_verify(tree, tmp_path):
    root, _ = tree
    rc, result = run_module(tmp_path, {"root": str(root)})
    assert rc == 1
    assert "files" in result["msg"]


def test_the_module_returns_manifest_entries(tree, tmp_path):
    root, files = tree
    rc, result = run_module(tmp_path, {"action": "manifest", "root": str(root)})
    assert (rc, result["changed"]) == (0, False)
    assert result["files"] == sorted(files, key=lambda f: f["path"])


def test_a_read_only_tree_verifies_without_a_stamp(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.pt").write_bytes(b"weights")
    os.utime(root / "a.pt", (1_700_000_000, 1_700_000_000))  # old enough to be stamped
    entry = {"path": "a.pt", "size": 7, "sha256": hashlib.sha256(b"weights").hexdigest()}

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(checkpoint_verify, "write_stamp", refuse)
    result = checkpoint_verify.Verification(str(root), [entry], []).run()
    assert result["ok"] is True
    assert "Read-only file system" in result["stamp_error"]
