"""Ids: stable across calls and processes, safe in paths and container names, distinct for
distinct names even when their slugs are the same."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cosmos_driver import ids

# What Docker accepts as a container name (the role names containers `cosmos-<run_id>`).
DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
BATCH_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*-[0-9a-f]{8}$")
RUN_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*-[0-9a-f]{8}$")

AWKWARD_NAMES = [
    "Demo sweep",
    "  leading and trailing  ",
    "UPPER_case.with.dots",
    "../../etc/passwd",
    "semi;colon $(rm -rf /) `tick`",
    "Ünïcödé 🎥 batch",
    "🎥🎥🎥",
    "",
    "-",
    "a" * 200,
    "x" * 39 + "-" + "y" * 10,
    "tab\tnewline\nnul\0",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_slug_is_lower_case_letters_digits_and_single_dashes(name):
    slug = ids.slug(name)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug), slug
    assert 1 <= len(slug) <= 40


def test_slug_keeps_readable_text():
    assert ids.slug("My Batch: Seeds 1..4") == "my-batch-seeds-1-4"
    assert ids.slug("already-a-slug") == "already-a-slug"


def test_slug_limit_does_not_leave_a_trailing_dash():
    assert ids.slug("x" * 39 + " tail") == "x" * 39
    assert ids.slug("abc def", limit=4) == "abc"


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_batch_and_run_ids_are_docker_name_safe(name):
    batch = ids.batch_id(name)
    run = ids.run_id(batch, name)
    assert BATCH_ID.fullmatch(batch), batch
    assert RUN_ID.fullmatch(run), run
    assert DOCKER_NAME.fullmatch(f"cosmos-{run}")
    assert DOCKER_NAME.fullmatch(run)
    assert "/" not in run
    assert ".." not in run


def test_ids_are_stable_across_calls():
    batch = ids.batch_id("Demo sweep")
    assert ids.batch_id("Demo sweep") == batch
    assert ids.run_id(batch, "seed-1") == ids.run_id(ids.batch_id("Demo sweep"), "seed-1")


def test_ids_are_stable_across_processes():
    """A re-run in a new interpreter (new hash seed) must find the same runs."""
    code = (
        "from cosmos_driver import ids; b = ids.batch_id('Demo sweep'); "
        "print(b); print(ids.run_id(b, 'seed-1'))"
    )
    outputs = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        )
        outputs.add(done.stdout)
    batch = ids.batch_id("Demo sweep")
    assert outputs == {f"{batch}\n{ids.run_id(batch, 'seed-1')}\n"}


def test_batch_id_starts_with_the_slug_of_the_name():
    assert ids.batch_id("Demo Sweep!").startswith("demo-sweep-")


def test_run_id_starts_with_the_batch_slug_and_names_the_job():
    batch = ids.batch_id("Demo sweep")
    run = ids.run_id(batch, "Seed 7")
    assert run.startswith("demo-sweep.seed-7-")


def test_distinct_batch_names_with_the_same_slug_get_distinct_ids():
    names = ["My Batch", "my batch", "my-batch", "my_batch", "MY  BATCH", "my.batch!"]
    assert len({ids.slug(n) for n in names}) == 1
    assert len({ids.batch_id(n) for n in names}) == len(names)


def test_distinct_job_names_with_the_same_slug_get_distinct_run_ids():
    batch = ids.batch_id("b")
    names = ["Job A", "job-a", "job_a", "JOB.A", "job a "]
    assert len({ids.slug(n) for n in names}) == 1
    assert len({ids.run_id(batch, n) for n in names}) == len(names)


def test_same_job_in_distinct_batches_gets_distinct_run_ids():
    first, second = ids.batch_id("My Batch"), ids.batch_id("my-batch")
    assert ids.run_id(first, "seed-1") != ids.run_id(second, "seed-1")


def test_batch_and_job_boundary_is_not_ambiguous():
    """Moving text between the batch id and the job name gives another run id."""
    assert ids.run_id("ab", "c") != ids.run_id("a", "bc")


def test_names_that_slug_to_nothing_are_still_distinct():
    names = ["", "-", "🎥", "🎞️", "!!!"]
    assert {ids.slug(n) for n in names} == {"x"}
    assert len({ids.batch_id(n) for n in names}) == len(names)
