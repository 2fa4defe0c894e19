"""The boundaries of DESIGN.md, enforced.

Each rule is a function over a source tree that returns its violations. The tests run every
rule on this repository (no violations allowed) and on a planted copy (each violation must be
found), so a rule that silently stops matching fails too."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = "cosmos_driver/ansible_adapter.py"
CONTAINER_PLACE = "library/cosmos_container.py"
FORBIDDEN_IMPORTS = {"paramiko", "docker", "fabric", "invoke.runners", "pexpect", "asyncssh"}
SSH_BINARIES = {"ssh", "scp", "sftp", "rsync"}
ENGINE_WORDS = re.compile(r"\b(docker|podman|nerdctl)\b")
ENGINE_ARGV = re.compile(
    r"""["'](docker|podman)["']\s*,\s*["']"""
    r"""(run|ps|inspect|logs|stop|rm|build|wait|exec|kill|import|pull|image|container)["']"""
)
SHELL_MODULES = {
    f"{prefix}{name}"
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for name in ("command", "shell", "raw", "script", "expect")
}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def python_files(root: Path) -> list[Path]:
    files = [root / "tasks.py", *sorted((root / "cosmos_driver").rglob("*.py"))]
    for folder in ("library", "module_utils"):
        files += sorted((root / folder).rglob("*.py"))
    return [f for f in files if f.exists() and "simulator" not in f.parts]


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def forbidden_imports(root: Path) -> list[str]:
    found = []
    for path in python_files(root):
        for name in imported_modules(path):
            if name in FORBIDDEN_IMPORTS or name.split(".")[0] in FORBIDDEN_IMPORTS - {"invoke"}:
                found.append(f"{rel(root, path)} imports {name}")
    return found


def runner_imports_outside_adapter(root: Path) -> list[str]:
    return [
        f"{rel(root, path)} imports ansible_runner"
        for path in python_files(root)
        if rel(root, path) != ADAPTER
        and any(name.split(".")[0] == "ansible_runner" for name in imported_modules(path))
    ]


def ssh_subprocesses(root: Path) -> list[str]:
    """Literal argv lists that start an ssh client: hosts are reached through Ansible only."""
    found = []
    for path in python_files(root):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List | ast.Tuple) and node.elts:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value in SSH_BINARIES:
                    found.append(f"{rel(root, path)}:{node.lineno} runs {first.value}")
    return found


def engine_commands_in_python(root: Path) -> list[str]:
    return [
        f"{rel(root, path)} spells a container-engine command"
        for path in python_files(root)
        if rel(root, path) != CONTAINER_PLACE and ENGINE_ARGV.search(path.read_text())
    ]


def _tasks(node: object) -> list[dict]:
    """Every task-like mapping in a parsed playbook or task file, nested blocks included."""
    found = []
    if isinstance(node, list):
        for item in node:
            found += _tasks(item)
    elif isinstance(node, dict):
        found.append(node)
        for value in node.values():
            if isinstance(value, list | dict):
                found += _tasks(value)
    return found


def engine_commands_in_ansible(root: Path) -> list[str]:
    found = []
    yaml_files = sorted((root / "roles").rglob("*.yml")) + sorted(
        (root / "playbooks").glob("*.yml")
    )
    for path in yaml_files:
        for task in _tasks(yaml.safe_load(path.read_text())):
            for module in SHELL_MODULES & set(task):
                if ENGINE_WORDS.search(str(task[module]) + str(task.get("args", ""))):
                    found.append(f"{rel(root, path)}: task {task.get('name')!r} runs the engine")
    return found


def _is_logging_call(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in LOG_METHODS
        and isinstance(func.value, ast.Name)
        and func.value.id in {"log", "logger", "logging", "LOG"}
    )


def _formatted_eagerly(arg: ast.expr) -> bool:
    if isinstance(arg, ast.JoinedStr):
        return True
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod | ast.Add):
        return True
    return isinstance(arg, ast.Call) and getattr(arg.func, "attr", "") == "format"


def eager_log_formatting(root: Path) -> list[str]:
    found = []
    for path in python_files(root):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _is_logging_call(node) and node.args:
                message = node.args[1] if node.func.attr == "log" else node.args[0]
                if _formatted_eagerly(message):
                    found.append(f"{rel(root, path)}:{node.lineno} formats its log message")
    return found


RULES = [
    forbidden_imports,
    runner_imports_outside_adapter,
    ssh_subprocesses,
    engine_commands_in_python,
    engine_commands_in_ansible,
    eager_log_formatting,
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_repository_keeps_the_rule(rule):
    assert rule(ROOT) == []


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the code and Ansible content to plant violations in."""
    for name in ("cosmos_driver", "library", "roles", "playbooks"):
        shutil.copytree(
            ROOT / name,
            tmp_path / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "molecule"),
        )
    shutil.copy(ROOT / "tasks.py", tmp_path / "tasks.py")
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


PLANTS = {
    forbidden_imports: ("cosmos_driver/batch.py", "\nimport paramiko\n"),
    runner_imports_outside_adapter: ("cosmos_driver/run/lifecycle.py", "\nimport ansible_runner\n"),
    ssh_subprocesses: ("cosmos_driver/store.py", "\nCMD = ['ssh', 'host', 'true']\n"),
    engine_commands_in_python: (
        "cosmos_driver/run/lifecycle.py",
        "\nCMD = ['docker', 'run', 'x']\n",
    ),
    engine_commands_in_ansible: (
        "roles/cosmos_job/tasks/collect.yml",
        "\n- name: Sneak\n  ansible.builtin.command:\n    argv: [docker, rm, -f, x]\n",
    ),
    eager_log_formatting: ("cosmos_driver/store.py", "\nlog.info(f'{len(__name__)} bytes')\n"),
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_finds_a_planted_violation(rule, planted):
    target, text = PLANTS[rule]
    assert rule(planted) == []
    _append(planted / target, text)
    assert rule(planted), f"{rule.__name__} missed a violation planted in {target}"


def test_shell_task_that_is_not_the_engine_is_allowed(planted):
    _append(
        planted / "roles/cosmos_job/tasks/collect.yml",
        "\n- name: Fine\n  ansible.builtin.command:\n    argv: [nvidia-smi, -L]\n",
    )
    assert engine_commands_in_ansible(planted) == []
