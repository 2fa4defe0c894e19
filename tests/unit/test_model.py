"""The job model's defaults agree with the profiles, and a prepared run carries its profile."""

from __future__ import annotations

from pathlib import Path

from cosmos_driver import profiles
from cosmos_driver.model import DEFAULT_PROFILE, Job
from cosmos_driver.run.types import PreparedRun


def test_the_default_profile_is_one_a_batch_file_may_name():
    assert DEFAULT_PROFILE == profiles.DEFAULT
    assert DEFAULT_PROFILE in profiles.NAMES


def test_a_prepared_run_resolves_its_profile_once(tmp_path: Path):
    job = Job("j", "a prompt", {}, {"edge": 1.0}, profile="transfer2.5")
    run = PreparedRun("r", "b", job, {}, tmp_path / "spec.json")
    assert run.profile is run.profile
    assert run.profile is profiles.profile_named("transfer2.5")
