"""The lab's source repository: a real bare git repository, written with the real git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cosmos_driver.errors import LabError
from cosmos_driver.lab import source_repo
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.lab.source_repo import SourceRepo


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """A small build context: a Dockerfile, an executable, a nested file, a cache to skip."""
    folder = tmp_path / "context"
    (folder / "pkg" / "__pycache__").mkdir(parents=True)
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY tool /tool\n")
    (folder / "tool").write_text("#!/bin/sh\necho hi\n")
    (folder / "tool").chmod(0o755)
    (folder / "pkg" / "mod.py").write_text("X = 1\n")
    (folder / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0cache")
    return folder


def test_same_content_gives_the_same_commit_in_any_repository(tmp_path, content, monkeypatch):
    with monkeypatch.context() as env:
        # Whoever runs lab.up, and whenever: the commit does not depend on it.
        env.setenv("GIT_AUTHOR_NAME", "someone else")
        env.setenv("GIT_COMMITTER_DATE", "2031-05-06T07:08:09+0000")
        first = SourceRepo(tmp_path / "a.git").publish(content)
    second = SourceRepo(tmp_path / "b.git").publish(content)
    assert first == second
    assert len(first) == 40


def test_publishing_again_unchanged_writes_no_commit(tmp_path, content):
    repo = SourceRepo(tmp_path / "source.git")
    first = repo.publish(content)
    again = repo.publish(content)
    assert again == first
    assert git(repo.path, "rev-list", "--all").split() == [first]


def test_changed_content_gives_a_new_commit_the_branch_and_a_tag_of_its_own(tmp_path, content):
    repo = SourceRepo(tmp_path / "source.git")
    first = repo.publish(content)
    (content / "pkg" / "mod.py").write_text("X = 2\n")
    second = repo.publish(content)
    assert second != first
    assert repo.head() == second
    assert git(repo.path, "rev-parse", "refs/heads/main") == second
    assert git(repo.path, "rev-parse", f"refs/tags/lab-{second[:12]}") == second
    # The first commit's tag stays where it was: tags never move.
    assert git(repo.path, "rev-parse", f"refs/tags/lab-{first[:12]}") == first
    assert git(repo.path, "show", f"{second}:pkg/mod.py") == "X = 2"


def test_a_clone_holds_the_content_with_modes_and_without_caches(tmp_path, content):
    repo = SourceRepo(tmp_path / "source.git")
    commit = repo.publish(content)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", repo.url, str(clone)], check=True)
    assert git(clone / ".git", "rev-parse", "HEAD") == commit
    assert (clone / "Dockerfile").read_text() == (content / "Dockerfile").read_text()
    assert os.access(clone / "tool", os.X_OK)
    assert not os.access(clone / "pkg" / "mod.py", os.X_OK)
    assert not (clone / "pkg" / "__pycache__").exists()


def test_host_vars_point_the_image_role_at_the_published_commit(tmp_path, content):
    paths = LabPaths(tmp_path / "lab")
    commit = source_repo.publish(paths, content)
    found = source_repo.host_vars(paths)
    assert found["cosmos_image_source"] == "git"
    assert found["cosmos_image_git_repo"] == f"file://{paths.source_repo}"
    assert found["cosmos_image_git_ref"] == commit


def test_host_vars_before_any_publish_say_so(tmp_path):
    with pytest.raises(LabError, match="no commit yet"):
        source_repo.host_vars(LabPaths(tmp_path / "lab"))


def test_an_empty_context_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabError, match="nothing to publish"):
        SourceRepo(tmp_path / "source.git").publish(tmp_path / "empty")
