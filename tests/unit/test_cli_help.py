"""`cosmos TASK --help` prints the task's help and runs nothing, for every task of the
namespace; a task missing its required flag says which one, before it does anything.

The real `cosmos` Program parses the command line in-process. Invoke takes any token, --help
included, as the value of a positional argument still missing, so a task parameter without a
default turns `TASK --help` into a run of the task: these tests catch one coming back."""

from __future__ import annotations

import pytest
from invoke import Task

from cosmos_driver.cli import program
from cosmos_driver.tasks import namespace

TASK_NAMES = sorted(namespace.task_names)
# A task without its required flag: the command line, and what its error lines say.
MISSING = [
    (["infer"], ["infer needs --batch FILE (a batch file; see docs/batch-file.md)"]),
    (["enhance"], ["enhance needs --prompt TEXT", "enhance needs --video FILE"]),
    (["enhance", "--prompt", "a wet street"], ["enhance needs --video FILE"]),
    (["show"], ["show needs --run ID"]),
    (["logs", "--follow"], ["logs needs --run ID"]),
    (["inspect", "--exact"], ["inspect needs --path PATH"]),
    (["prepare", "--fps", "30"], ["prepare needs --dir DIR"]),
    (["checkpoints.manifest"], ["checkpoints.manifest needs --host HOST"]),
]


def cosmos(*argv: str) -> int:
    """Run `cosmos ARGV` as the installed command does; its exit status."""
    try:
        program.run(["cosmos", *argv])
    except SystemExit as exc:
        return 0 if exc.code is None else int(exc.code)
    return 0


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """The names of the tasks the Program called; none of their bodies runs."""
    called: list[str] = []
    monkeypatch.setattr(Task, "__call__", lambda task, *args, **kwargs: called.append(task.name))
    return called


def test_every_task_is_checked_subcollections_included():
    assert len(TASK_NAMES) >= 17
    for name in ("infer", "show", "lab.up", "checkpoints.manifest", "checkpoints.verify"):
        assert name in TASK_NAMES


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("form", ["TASK --help", "--help TASK"])
def test_help_prints_usage_and_runs_nothing(name, form, ran, capsys):
    argv = [name if word == "TASK" else word for word in form.split()]

    code = cosmos(*argv)

    out, err = capsys.readouterr()
    assert (code, ran) == (0, []), err
    assert f"Usage: cosmos [--core-opts] {name} [--options]" in out
    assert "error:" not in out + err


@pytest.mark.parametrize(("argv", "needs"), MISSING, ids=[" ".join(a) for a, _ in MISSING])
def test_a_missing_required_flag_is_named_before_anything_runs(
    argv, needs, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COSMOS_INVENTORY", str(tmp_path / "inventory.yml"))

    code = cosmos(*argv)

    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    for text in needs:
        assert f"error: {text}" in err
    assert len(err.splitlines()) == len(needs)
    assert list(tmp_path.iterdir()) == [], "nothing is written before the check"
