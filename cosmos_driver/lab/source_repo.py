"""The lab's Cosmos "source" repository: a bare git repository holding the simulator's build
context, so the image role can clone a pinned commit and build it offline, as on a real host.

Commits carry a fixed author, committer and date and no parent, so the same content always
gives the same commit sha; a new commit is written only when the content changed."""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_driver.errors import LabError
from cosmos_driver.lab.paths import LabPaths

log = logging.getLogger(__name__)

BRANCH = "refs/heads/main"
# One tag per commit, never moved: a clone refuses to fetch a tag that moved ("would
# clobber existing tag"), as it would from any upstream that re-tags.
TAG_PREFIX = "refs/tags/lab-"
LEGACY_TAG = "refs/tags/lab"
MESSAGE = "Cosmos Transfer1 simulator build context (written by invoke lab.up)\n"
IDENTITY = {
    "GIT_AUTHOR_NAME": "cosmos-lab",
    "GIT_AUTHOR_EMAIL": "cosmos-lab@localhost",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+0000",
    "GIT_COMMITTER_NAME": "cosmos-lab",
    "GIT_COMMITTER_EMAIL": "cosmos-lab@localhost",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00+0000",
}


@dataclass(frozen=True)
class SourceRepo:
    """One bare repository; every git call runs with its GIT_DIR and no user configuration."""

    path: Path

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def publish(self, content: Path) -> str:
        """Commit the files under content (no __pycache__) unless the tip holds them already;
        point the branch at that commit, tag it lab-<sha12>, and return its sha."""
        self._init()
        tree = self._write_tree(content)
        tip = self.head()
        if tip is not None and self._git("rev-parse", f"{tip}^{{tree}}") == tree:
            return tip
        commit = self._git("commit-tree", tree, stdin=MESSAGE)
        self._git("update-ref", BRANCH, commit)
        self._git("update-ref", f"{TAG_PREFIX}{commit[:12]}", commit)
        log.info("lab source repository %s now at %s", self.path, commit)
        return commit

    def head(self) -> str | None:
        """The commit the branch points at, or None before the first publish."""
        if not self.path.is_dir():
            return None
        found = self._run("rev-parse", "-q", "--verify", f"{BRANCH}^{{commit}}")
        return found.stdout.strip() if found.returncode == 0 else None

    def _init(self) -> None:
        if not (self.path / "HEAD").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self._git("init", "-q", "--bare")
            self._git("symbolic-ref", "HEAD", BRANCH)
        # Labs written before tags stopped moving have a `lab` tag that clones cannot fetch.
        self._run("update-ref", "-d", LEGACY_TAG)

    def _write_tree(self, content: Path) -> str:
        """The tree of content, built in a throw-away index (a bare repo has no work tree)."""
        files = source_files(content)
        if not files:
            raise LabError(f"nothing to publish in {content}")
        shas = self._git("hash-object", "-w", "--stdin-paths", stdin=_lines(files)).split()
        entries = [
            f"{_mode(path)} {sha}\t{path.relative_to(content).as_posix()}"
            for path, sha in zip(files, shas, strict=True)
        ]
        index = self.path / "lab-publish.index"
        index.unlink(missing_ok=True)
        try:
            env = {"GIT_INDEX_FILE": str(index)}
            self._git("update-index", "--add", "--index-info", stdin=_lines(entries), env=env)
            return self._git("write-tree", env=env)
        finally:
            index.unlink(missing_ok=True)

    def _git(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        done = self._run(*args, stdin=stdin, env=env)
        if done.returncode != 0:
            raise LabError(f"git {args[0]} in {self.path} failed: {done.stderr.strip()[-500:]}")
        return done.stdout.strip()

    def _run(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            **os.environ,
            **IDENTITY,
            "GIT_DIR": str(self.path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            **(env or {}),
        }
        return subprocess.run(
            ["git", *args], input=stdin, env=full_env, capture_output=True, text=True, check=False
        )


def source_files(content: Path) -> list[Path]:
    """The files of a build context, sorted, as simulator_sources_hash sees them."""
    return sorted(p for p in content.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _mode(path: Path) -> str:
    return "100755" if os.access(path, os.X_OK) else "100644"


def _lines(items: list[Any]) -> str:
    return "".join(f"{item}\n" for item in items)


def publish(paths: LabPaths, content: Path) -> str:
    """lab.up's step: mirror content into the lab's source repository."""
    return SourceRepo(paths.source_repo).publish(content)


def host_vars(paths: LabPaths) -> dict[str, Any]:
    """What each lab host needs for the image role: clone the published commit and build it
    with no network (the lab engine has no bridge; the base image is already imported)."""
    repo = SourceRepo(paths.source_repo)
    commit = repo.head()
    if commit is None:
        raise LabError(f"the lab source repository {repo.path} has no commit yet")
    return {
        "cosmos_image_source": "git",
        "cosmos_image_git_repo": repo.url,
        "cosmos_image_git_ref": commit,
        "cosmos_image_build_network": "none",
    }
