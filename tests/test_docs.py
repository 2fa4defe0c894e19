"""The documentation stands alone and keeps up with the code.

- Every file of the driver and the roles is in docs/architecture.md's file map, and every
  path the map lists exists (the rule is stated in the map's heading).
- No tracked file cites a document that lives outside the repository.
- Every relative link in docs/*.md and README.md points at a file that exists, and at a
  heading that exists when it names one.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The folders whose every file the file map must list: change this when the layout moves.
MAPPED_ROOTS = ("cosmos_driver",)
# What is not a file of the project: Python's caches.
IGNORED_PARTS = frozenset({"__pycache__"})
IGNORED_SUFFIXES = (".pyc",)
FILE_MAP = ROOT / "docs" / "architecture.md"
FILE_MAP_HEADING = "## Which file does what"

# Citations of documents that lived outside the repository (their content is now in docs/).
OUTSIDE_CITATIONS = re.compile(
    r"DESIGN\.md"
    r"|(?<![\w./-])reference/[\w.-]+"
    r"|/work/shared\b"
    r"|\b(?:ansible-notes|job-runners|lab-recipes|predecessor)\.md"
)
LINK = re.compile(r"!?\[(?:[^\]`]|`[^`]*`)*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


# --- helpers --------------------------------------------------------------------------------


def expand_braces(text: str) -> list[str]:
    """Shell-style `{a,b}` alternatives, nested or several in one path."""
    start = text.find("{")
    if start < 0:
        return [text]
    depth, end, commas = 0, -1, []
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                end = index
                break
        elif char == "," and depth == 1:
            commas.append(index)
    assert end > 0, f"unbalanced braces in {text!r}"
    bounds = [start, *commas, end]
    alternatives = [text[a + 1 : b] for a, b in itertools.pairwise(bounds)]
    prefix, suffix = text[:start], text[end + 1 :]
    return [path for alt in alternatives for path in expand_braces(prefix + alt + suffix)]


def file_map_paths(text: str) -> list[str]:
    """Every path of the first column of the tables under the file map's heading."""
    section = text.split(FILE_MAP_HEADING, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    paths = []
    for line in section.splitlines():
        cells = line.split("|")
        if not line.startswith("|") or len(cells) < 3:
            continue
        for token in re.findall(r"`([^`]+)`", cells[1]):
            paths.extend(expand_braces(token))
    return paths


def mapped_files() -> list[str]:
    found = []
    for root in MAPPED_ROOTS:
        folder = ROOT / root
        assert folder.is_dir(), f"{root}/ is in MAPPED_ROOTS but does not exist"
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(ROOT)
            if IGNORED_PARTS & set(relative.parts) or path.suffix in IGNORED_SUFFIXES:
                continue
            if path.is_file():
                found.append(relative.as_posix())
    return found


def tracked_files() -> list[Path]:
    done = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    )
    return [ROOT / name for name in done.stdout.split("\0") if name]


def outside_citations(text: str) -> list[str]:
    return [match.group(0) for match in OUTSIDE_CITATIONS.finditer(text)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = re.match(r"#{1,6} +(.*)", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(doc: Path) -> list[str]:
    broken = []
    for number, line in prose_lines(doc.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            name, _, anchor = target.partition("#")
            path = (doc.parent / name).resolve() if name else doc
            where = f"{doc.relative_to(ROOT)}:{number}: {target}"
            if not path.exists():
                broken.append(f"{where}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{where}: no such heading in {path.name}")
    return broken


# --- the file map ---------------------------------------------------------------------------


def test_every_file_of_the_driver_and_the_roles_is_in_the_file_map():
    files = mapped_files()
    listed = set(file_map_paths(FILE_MAP.read_text(encoding="utf-8")))
    assert len(files) > 100, "the scan found too few files: is MAPPED_ROOTS right?"
    missing = [path for path in files if path not in listed]
    assert missing == [], f"add these to the map in docs/architecture.md: {missing}"


def test_every_path_in_the_file_map_exists():
    paths = file_map_paths(FILE_MAP.read_text(encoding="utf-8"))
    assert len(paths) > 100
    stale = [
        path
        for path in paths
        if not ((ROOT / path).is_dir() if path.endswith("/") else (ROOT / path).is_file())
    ]
    assert stale == [], f"the map lists paths that do not exist: {stale}"


def test_braces_expand_like_a_shell():
    assert expand_braces("a/{b,c}/d.{x,y}") == ["a/b/d.x", "a/b/d.y", "a/c/d.x", "a/c/d.y"]
    assert expand_braces("r/{m/main,meta/{a,b}}.yml") == [
        "r/m/main.yml",
        "r/meta/a.yml",
        "r/meta/b.yml",
    ]
    assert expand_braces("plain.py") == ["plain.py"]


def test_the_map_parser_reads_only_the_first_column_of_the_map_section():
    text = (
        "## Before\n| `not/this.py` | x |\n"
        f"{FILE_MAP_HEADING}\n\n| File | Does |\n|---|---|\n"
        "| `a.py`, `b/{c,d}.yml` | uses `not/either.py` |\n"
        "## After\n| `nor/this.py` | x |\n"
    )
    assert file_map_paths(text) == ["a.py", "b/c.yml", "b/d.yml"]


# --- citations ------------------------------------------------------------------------------


def test_no_tracked_file_cites_a_document_outside_the_repository():
    files = tracked_files()
    assert len(files) > 100
    found = []
    for path in files:
        if path == Path(__file__).resolve() or path.is_symlink() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a video or another binary file
        for number, line in enumerate(text.splitlines(), start=1):
            found += [f"{path.relative_to(ROOT)}:{number}: {c}" for c in outside_citations(line)]
    assert found == [], "cite docs/design.md or docs/cosmos-transfer.md instead"


def test_the_citation_check_finds_each_kind():
    text = "see DESIGN.md; reference/cosmos-transfer.md §2; /work/shared/x; lab-recipes.md"
    assert outside_citations(text) == [
        "DESIGN.md",
        "reference/cosmos-transfer.md",
        "/work/shared",
        "lab-recipes.md",
    ]
    assert outside_citations("docs/cosmos-transfer.md §2, docs/design.md, a reference") == []


# --- links ----------------------------------------------------------------------------------


def test_every_relative_link_of_the_docs_and_the_readme_resolves():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(docs) > 10
    broken = [problem for doc in docs for problem in broken_links(doc)]
    assert broken == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n[ok](other.md#a-heading) [here](#doc) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad](other.md#nowhere)\n```\n[in code](nowhere.md)\n```\n"
    )
    assert broken_links(doc) == [
        "doc.md:3: missing.md: no such file",
        "doc.md:3: other.md#nowhere: no such heading in other.md",
    ]
