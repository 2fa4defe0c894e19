"""Batch files: a valid one becomes jobs with defaults merged in; an invalid one is reported
in full, one `file:line: where: what` line per problem, in a single ValidationError."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmos_driver import ids
from cosmos_driver.batch import DEFAULT_TIMEOUT, SAMPLING_FIELDS, load_batch
from cosmos_driver.errors import CosmosError, ValidationError


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_batch(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def only_problem(path: Path) -> str:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


# --- valid batches -------------------------------------------------------------------------


VALID = """
name: Demo sweep
defaults:
  prompt: a robot arm stacks cups
  inputs:
    color: videos/color.mp4
  controls:
    edge: 0.5
  num_steps: 10
  guidance: 7.5
  gpus: 2
  timeout: 600
  env: {FOO: bar, N: 3}
jobs:
  - name: seed-1
    seed: 1
  - name: seed_2.depth
    prompt: another prompt
    inputs: {color: videos/color.mp4, depth: videos/depth.mp4}
    controls: {depth: 0.25, edge: 1}
    seed: 2
    fps: 24
    sigma_max: 80
    negative_prompt: blurry
    blur_strength: low
    canny_threshold: very_high
    gpus: 1
"""


def test_valid_batch_merges_defaults_into_each_job(write_batch, batch_dir):
    path = write_batch(VALID)
    batch = load_batch(path)

    assert batch.name == "Demo sweep"
    assert batch.source == path.resolve()
    first, _second = batch.jobs
    assert first.name == "seed-1"
    assert first.prompt == "a robot arm stacks cups"
    assert first.inputs == {"color": (batch_dir / "videos" / "color.mp4").resolve()}
    assert first.controls == {"edge": 0.5}
    assert first.sampling == {"num_steps": 10, "guidance": 7.5, "seed": 1}
    assert first.gpus == 2
    assert first.timeout == 600
    assert first.env == {"FOO": "bar", "N": "3"}


def test_valid_batch_job_fields_override_defaults(write_batch, batch_dir):
    batch = load_batch(write_batch(VALID))
    second = batch.jobs[1]

    assert second.prompt == "another prompt"
    assert second.inputs == {
        "color": (batch_dir / "videos" / "color.mp4").resolve(),
        "depth": (batch_dir / "videos" / "depth.mp4").resolve(),
    }
    assert second.controls == {"depth": 0.25, "edge": 1.0}
    assert all(isinstance(weight, float) for weight in second.controls.values())
    assert second.sampling == {
        "num_steps": 10,
        "guidance": 7.5,
        "seed": 2,
        "fps": 24,
        "sigma_max": 80,
        "negative_prompt": "blurry",
        "blur_strength": "low",
        "canny_threshold": "very_high",
    }
    assert set(second.sampling) == set(SAMPLING_FIELDS)
    assert second.gpus == 1
    assert second.timeout == 600


def test_job_without_defaults_gets_built_in_gpus_timeout_env(write_batch):
    batch = load_batch(
        write_batch(
            """
            name: minimal
            jobs:
              - name: only
                prompt: p
                inputs: {color: videos/color.mp4}
                controls: {vis: 0}
            """
        )
    )
    (job,) = batch.jobs
    assert job.gpus == 1
    assert job.timeout == DEFAULT_TIMEOUT
    assert job.env == {}
    assert job.sampling == {}
    assert job.controls == {"vis": 0.0}


def test_inputs_are_relative_to_the_batch_file_not_the_cwd(
    write_batch, batch_dir, tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    batch = load_batch(write_batch(VALID))
    assert batch.jobs[0].inputs["color"] == (batch_dir / "videos" / "color.mp4").resolve()


def test_batch_and_run_ids_come_from_ids_module(write_batch):
    batch = load_batch(write_batch(VALID))
    assert batch.batch_id == ids.batch_id("Demo sweep")
    assert [batch.run_id(job) for job in batch.jobs] == [
        ids.run_id(batch.batch_id, "seed-1"),
        ids.run_id(batch.batch_id, "seed_2.depth"),
    ]


@pytest.mark.parametrize("weight", [0, 1, 0.0, 1.0, 0.5])
def test_weight_bounds_are_inclusive(write_batch, weight):
    batch = load_batch(
        write_batch(
            f"""
            name: b
            jobs:
              - name: j
                prompt: p
                inputs: {{color: videos/color.mp4}}
                controls: {{edge: {weight}}}
            """
        )
    )
    assert batch.jobs[0].controls == {"edge": float(weight)}


def test_name_of_64_characters_is_accepted(write_batch):
    name = "a" * 64
    batch = load_batch(
        write_batch(
            f"""
            name: b
            jobs:
              - name: {name}
                prompt: p
                inputs: {{color: videos/color.mp4}}
                controls: {{edge: 0.5}}
            """
        )
    )
    assert batch.jobs[0].name == name


# --- every problem at once -----------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_file_line_and_job(write_batch, line_of):
    path = write_batch(
        """
        name: many problems
        defaults:
          gpus: 1
        jobs:
          - name: first
            promt: typo in the key
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 1.5}
          - name: second
            prompt: p
            inputs:
              color: videos/color.mp4
              depth: videos/missing-depth.mp4
            controls: {edge: 0.5}
            seed: true
        """
    )
    problems = problems_of(path)

    expected = [
        f"{path}:{line_of(path, 'promt')}: jobs[0] (first).promt: unknown key; "
        "did you mean 'prompt'?",
        f"{path}:{line_of(path, 'edge: 1.5')}: jobs[0] (first).controls.edge: "
        "must be from 0 to 1, got 1.5",
        f"{path}:{line_of(path, 'seed: true')}: jobs[1] (second).seed: "
        "must be a whole number from 0 to 4294967295, got True",
        f"{path}:{line_of(path, 'missing-depth')}: jobs[1] (second).inputs.depth: "
        f"no such file: {(path.parent / 'videos' / 'missing-depth.mp4').resolve()}",
    ]
    assert sorted(problems) == sorted(expected)


def test_validation_error_is_a_cosmos_error_with_exit_code_2(write_batch):
    with pytest.raises(CosmosError) as caught:
        load_batch(write_batch("name: x\njobs: []\n"))
    assert isinstance(caught.value, ValidationError)
    assert caught.value.exit_code == 2


# --- unknown keys: did you mean ------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_close_one(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jbos:
          - name: j
        """
    )
    problems = problems_of(path)
    assert f"{path}:{line_of(path, 'jbos')}: jbos: unknown key; did you mean 'jobs'?" in problems
    # The misspelt key does not count as `jobs`, so that is missing too.
    assert f"{path}: jobs: required: a list of at least one job" in problems
    assert len(problems) == 2


def test_unknown_key_without_a_close_match_lists_the_valid_ones(write_batch, line_of):
    path = write_batch(
        """
        name: b
        zzz: 1
        jobs:
          - name: j
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'zzz')}: zzz: unknown key; valid: name, defaults, jobs, max_runs"
    )


def test_unknown_job_key_suggests_the_close_one(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
            num_step: 10
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'num_step')}: jobs[0] (j).num_step: unknown key; "
        "did you mean 'num_steps'?"
    )


def test_unknown_input_key_suggests_the_close_one_and_color_is_then_missing(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs:
              colour: videos/color.mp4
            controls: {edge: 0.5}
        """
    )
    problems = problems_of(path)
    assert sorted(problems) == sorted(
        [
            f"{path}:{line_of(path, 'colour')}: jobs[0] (j).inputs.colour: unknown key; "
            "did you mean 'color'?",
            f"{path}:{line_of(path, 'inputs:')}: jobs[0] (j).inputs: "
            "needs a 'color' video (the scene to transfer)",
        ]
    )


def test_unknown_control_key_suggests_the_close_one(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {color: videos/color.mp4}
            controls:
              edge: 0.5
              dpeth: 0.5
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'dpeth')}: jobs[0] (j).controls.dpeth: unknown key; "
        "did you mean 'depth'?"
    )


def test_unknown_key_in_defaults_is_reported_once_at_its_line(write_batch, line_of):
    path = write_batch(
        """
        name: b
        defaults:
          guidanse: 3
        jobs:
          - name: a
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
          - name: b
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'guidanse')}: defaults.guidanse: unknown key; "
        "did you mean 'guidance'?"
    )


def test_name_is_not_allowed_in_defaults(write_batch):
    path = write_batch(
        """
        name: b
        defaults:
          name: everyone
        jobs:
          - name: a
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    problem = only_problem(path)
    assert "defaults.name: unknown key" in problem
    assert "did you mean 'name'" not in problem


# --- inputs and controls ----------------------------------------------------------------------


def test_missing_color_input(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs:
              edge: videos/edge.mp4
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'inputs:')}: jobs[0] (j).inputs: "
        "needs a 'color' video (the scene to transfer)"
    )


def test_input_file_that_does_not_exist(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs:
              color: videos/nope.mp4
            controls: {edge: 0.5}
        """
    )
    missing = (path.parent / "videos" / "nope.mp4").resolve()
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'nope.mp4')}: jobs[0] (j).inputs.color: no such file: {missing}"
    )


def test_input_that_is_a_directory_is_not_a_file(write_batch):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {color: videos}
            controls: {edge: 0.5}
        """
    )
    videos = (path.parent / "videos").resolve()
    assert only_problem(path).endswith(
        f"jobs[0] (j).inputs.color: {videos} is a folder; name a video file in it"
    )


@pytest.mark.parametrize("value", ["''", "3", "[a.mp4]"])
def test_input_that_is_not_a_path(write_batch, value):
    path = write_batch(
        f"""
        name: b
        jobs:
          - name: j
            prompt: p
            inputs:
              color: {value}
            controls: {{edge: 0.5}}
        """
    )
    assert only_problem(path).endswith("jobs[0] (j).inputs.color: must be the path of a video file")


def test_depth_input_without_a_depth_weight(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs:
              color: videos/color.mp4
              depth: videos/depth.mp4
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'depth.mp4')}: jobs[0] (j).inputs.depth: "
        "a depth video needs a weight: add controls.depth: 0.5"
    )


def test_control_without_an_input_is_fine(write_batch):
    batch = load_batch(
        write_batch(
            """
            name: b
            jobs:
              - name: j
                prompt: p
                inputs: {color: videos/color.mp4}
                controls: {seg: 0.2, depth: 0.3}
            """
        )
    )
    assert batch.jobs[0].controls == {"seg": 0.2, "depth": 0.3}
    assert set(batch.jobs[0].inputs) == {"color"}


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        ("1.01", "must be from 0 to 1, got 1.01"),
        ("-0.1", "must be from 0 to 1, got -0.1"),
        ("true", "must be a number from 0 to 1, got True"),
    ],
)
def test_weight_outside_0_to_1(write_batch, line_of, weight, message):
    path = write_batch(
        f"""
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {{color: videos/color.mp4}}
            controls:
              vis: 0.5
              edge: {weight}
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'edge:')}: jobs[0] (j).controls.edge: {message}"
    )


@pytest.mark.parametrize("weight", ["high", "[0.5]"])
def test_weight_that_is_not_a_number_is_reported_not_raised(write_batch, line_of, weight):
    path = write_batch(
        f"""
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {{color: videos/color.mp4}}
            controls:
              edge: {weight}
        """
    )
    problem = only_problem(path)
    assert problem.startswith(f"{path}:{line_of(path, 'edge:')}: jobs[0] (j).controls.edge: ")
    assert "must be a number from 0 to 1" in problem


def test_empty_controls_need_at_least_one_weight(write_batch):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {}
        """
    )
    assert only_problem(path).endswith(
        "jobs[0] (j).controls: give at least one of vis, edge, depth, seg, keypoint a weight"
    )


# --- field types and ranges ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gpus", "true", "must be a whole number from 1 to 8, got True"),
        ("seed", "false", "must be a whole number from 0 to 4294967295, got False"),
        ("num_steps", "2.5", "must be a whole number from 1 to 200, got 2.5"),
        ("timeout", "'60'", "must be a whole number from 1 to 604800, got '60'"),
        ("gpus", "9", "must be from 1 to 8, got 9"),
        ("gpus", "0", "must be from 1 to 8, got 0"),
        ("timeout", "0", "must be from 1 to 604800, got 0"),
        ("guidance", "25", "must be from 0 to 20, got 25"),
        ("guidance", "yes", "must be a number from 0 to 20, got True"),
        ("fps", "0", "must be from 1 to 120, got 0"),
        (
            "blur_strength",
            "extreme",
            "must be one of very_low, low, medium, high, very_high, got 'extreme'",
        ),
        ("negative_prompt", "3", 'must be text ("" for none), got 3'),
        ("env", "[A, B]", "must be a mapping of variable names to values"),
    ],
)
def test_wrong_type_or_range_is_reported_with_line_and_field(
    write_batch, line_of, field, value, message
):
    path = write_batch(
        f"""
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {{color: videos/color.mp4}}
            controls: {{edge: 0.5}}
            {field}: {value}
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, f'{field}:')}: jobs[0] (j).{field}: {message}"
    )


def test_bad_value_in_defaults_is_reported_for_every_job(write_batch):
    path = write_batch(
        """
        name: b
        defaults:
          gpus: true
        jobs:
          - name: a
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
          - name: c
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    problems = problems_of(path)
    assert len(problems) == 2
    assert "jobs[0] (a).gpus: must be a whole number" in problems[0]
    assert "jobs[1] (c).gpus: must be a whole number" in problems[1]


def test_missing_required_job_fields(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: lonely
        """
    )
    line = line_of(path, "name: lonely")
    assert problems_of(path) == [
        f"{path}:{line}: jobs[0] (lonely): missing required field '{key}'"
        for key in ("prompt", "inputs", "controls")
    ]


def test_job_label_without_a_text_name_is_the_index(write_batch):
    path = write_batch(
        """
        name: b
        jobs:
          - name: 42
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path).endswith("jobs[0].name: must be non-empty text, got 42")


def test_job_that_is_not_a_mapping(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - just a string
        """
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'just a string')}: jobs[0]: "
        "a job is a mapping (name, prompt, inputs, controls)"
    )


@pytest.mark.parametrize("jobs", ["[]", "{}", "null", "a job"])
def test_jobs_must_be_a_non_empty_list(write_batch, jobs):
    path = write_batch(f"name: b\njobs: {jobs}\n")
    assert only_problem(path) == f"{path}:2: jobs: required: a list of at least one job"


def test_batch_name_is_required(write_batch):
    path = write_batch(
        """
        jobs:
          - name: j
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path) == (
        f"{path}: name: required: the batch's name (text, 256 characters at most)"
    )


def test_defaults_must_be_a_mapping(write_batch):
    path = write_batch(
        """
        name: b
        defaults: [gpus]
        jobs:
          - name: j
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path) == f"{path}:2: defaults: must be a mapping of job fields"


# --- job names -----------------------------------------------------------------------------


def test_duplicate_job_names(write_batch, line_of):
    path = write_batch(
        """
        name: b
        jobs:
          - name: same
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
          - name: other
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
          - name: same
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    problem = only_problem(path)
    assert problem.startswith(f"{path}:{line_of(path, 'name: same', occurrence=2)}: jobs[2]")
    assert problem.endswith("duplicate job name; jobs[0] has it too")


@pytest.mark.parametrize(
    "name", ["'my job'", "-leading-dash", "a/b", "'../up'", "é", "a" * 129, "'.hidden'"]
)
def test_job_name_with_bad_characters(write_batch, line_of, name):
    path = write_batch(
        f"""
        name: b
        jobs:
          - name: {name}
            prompt: p
            inputs: {{color: videos/color.mp4}}
            controls: {{edge: 0.5}}
        """
    )
    problem = only_problem(path)
    assert problem.startswith(f"{path}:{line_of(path, 'name: ', occurrence=2)}: jobs[0] (")
    assert problem.endswith(
        ".name: must start with a letter or digit, then letters, digits, "
        "'.', '_' or '-' (128 characters at most)"
    )


def test_job_name_with_a_trailing_newline_is_rejected(write_batch):
    path = write_batch(
        """
        name: b
        jobs:
          - name: "abc\\n"
            prompt: p
            inputs: {color: videos/color.mp4}
            controls: {edge: 0.5}
        """
    )
    assert only_problem(path).endswith(
        ".name: must start with a letter or digit, then letters, digits, "
        "'.', '_' or '-' (128 characters at most)"
    )


# --- files that are not batches ------------------------------------------------------------


def test_yaml_syntax_error_names_the_line(write_batch):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: "unterminated
            inputs: {color: videos/color.mp4}
        """
    )
    problem = only_problem(path)
    assert problem.startswith(f"{path}:")
    line = int(problem[len(f"{path}:") :].split(":", 1)[0])
    assert 4 <= line <= 6
    assert "not valid YAML" in problem


def test_yaml_syntax_error_on_a_known_line(write_batch):
    path = write_batch("name: b\njobs:\n  - name: j\n    prompt: [unclosed\n  oops: 1\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}:5: not valid YAML")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n", "42\n"])
def test_empty_or_non_mapping_file(write_batch, text):
    path = write_batch(text)
    assert only_problem(path) == (f"{path}: a batch file is a mapping with name, defaults and jobs")


def test_unreadable_file(tmp_path):
    path = tmp_path / "absent.yaml"
    problem = only_problem(path)
    assert problem.startswith(f"{path}: cannot read")


def test_a_sweep_gives_one_job_per_combination_with_stable_names(tmp_path):
    (tmp_path / "c.mp4").write_bytes(b"x")
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: sweep\n"
        "jobs:\n"
        "  - name: scene\n"
        "    prompt: p\n"
        "    inputs: {color: c.mp4}\n"
        "    controls: {edge: 0.5}\n"
        "    seed: [1, 2, 3]\n"
        "    guidance: [5, 7.5]\n"
        "    retries: 2\n"
    )
    batch = load_batch(path)
    names = [job.name for job in batch.jobs]
    assert len(names) == 6
    assert names[0] == "scene.seed-1.guidance-5"
    assert "scene.seed-3.guidance-7.5" in names
    assert {(j.sampling["seed"], j.sampling["guidance"]) for j in batch.jobs} == {
        (s, g) for s in (1, 2, 3) for g in (5, 7.5)
    }
    assert len(batch.jobs) == 6
    assert all(job.retries == 2 for job in batch.jobs)
    assert load_batch(path).jobs == batch.jobs


def test_a_bad_value_in_a_sweep_is_named(tmp_path):
    (tmp_path / "c.mp4").write_bytes(b"x")
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: sweep\njobs:\n  - name: s\n    prompt: p\n    inputs: {color: c.mp4}\n"
        "    controls: {edge: 0.5}\n    seed: [1, -4]\n"
    )
    with pytest.raises(ValidationError) as caught:
        load_batch(path)
    assert "jobs[0] (s.seed--4).seed: must be from 0 to 4294967295, got -4" in str(caught.value)


def test_an_input_that_appears_after_a_load_is_found_by_the_next_load(write_batch):
    path = write_batch(
        """
        name: b
        jobs:
          - name: j
            prompt: p
            inputs: {color: later.mp4}
            controls: {edge: 0.5}
        """
    )
    assert "no such file" in only_problem(path)
    (path.parent / "later.mp4").write_bytes(b"not checked here")
    assert load_batch(path).jobs[0].inputs["color"] == (path.parent / "later.mp4").resolve()
