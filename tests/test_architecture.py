"""The boundaries of docs/design.md and docs/architecture.md, enforced.

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
COLLECTION = "cosmos_driver/ansible_collections/cosmos/driver"
# The container module and its module_utils: the only files that spell engine commands.
CONTAINER_PLACES = frozenset(
    f"{COLLECTION}/plugins/{name}.py"
    for name in (
        "modules/cosmos_container",
        "module_utils/cosmos_engine",
        "module_utils/cosmos_job_container",
        "module_utils/cosmos_engine_setup",
    )
)
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
        if rel(root, path) not in CONTAINER_PLACES and ENGINE_ARGV.search(path.read_text())
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
    collection = root / COLLECTION
    yaml_files = sorted((collection / "roles").rglob("*.yml")) + sorted(
        (collection / "playbooks").glob("*.yml")
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


# --- the driver's own modules: size, import cycles, layers -----------------------------------

MAX_MODULE_LINES = 400
PLUGINS = f"{COLLECTION}/plugins"
PLUGIN_KINDS = {"modules", "module_utils", "action", "lookup", "filter"}
INTERFACE = ("cosmos_driver/tasks/", "cosmos_driver/dashboard/", "cosmos_driver/cli.py", "tasks.py")
# Neither the driver's code nor its rules: the simulator image, and Ansible content once it
# lives in a collection inside the package.
NOT_DRIVER_CODE = ("cosmos_driver/lab/simulator/", "cosmos_driver/ansible_collections/")
DOMAIN_FORBIDS = {"subprocess", "ansible", "ansible_runner"}
# The scheduler's side of the backend seam: it may not know how runs are placed or run.
SEAM_SIDE = ("cosmos_driver/scheduler.py", "cosmos_driver/dependent_runs.py")
BACKEND_SIDE = {
    "cosmos_driver.ssh_hosts",
    "cosmos_driver.device_pool",
    "cosmos_driver.slurm_backend",
    "cosmos_driver.slurm_calls",
    "cosmos_driver.slurm_submit",
    "cosmos_driver.ansible_adapter",
}


def driver_modules(root: Path) -> dict[str, Path]:
    """Every module of the driver package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((root / "cosmos_driver").rglob("*.py")):
        if rel(root, path).startswith(NOT_DRIVER_CODE):
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Which driver modules each driver module imports, TYPE_CHECKING and function-level
    imports included; `from pkg import name` counts as pkg.name when that is a module."""
    modules = driver_modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(name, path, node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A shortest import path from `start` back to itself, if there is one."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop(0)
        for target in sorted(graph[current]):
            if target == start:
                return [*paths[current], start]
            if target not in paths:
                paths[target] = [*paths[current], target]
                queue.append(target)
    return None


def import_cycles(root: Path) -> list[str]:
    """Each import cycle among the driver's modules, once, as `a -> b -> a`."""
    graph = import_graph(root)
    found, seen = [], set()
    for module in sorted(graph):
        cycle = _cycle_from(module, graph)
        if cycle and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            found.append(" -> ".join(cycle))
    return found


def collection_plugins(root: Path) -> list[Path]:
    """The collection's Python plugins of every kind (modules, module_utils, action, lookup,
    filter, and any kind added later): production code that runs on hosts and controllers."""
    return sorted((root / PLUGINS).rglob("*.py"))


def oversized_modules(root: Path) -> list[str]:
    """No production module over MAX_MODULE_LINES: the driver's and the collection's."""
    return [
        f"{rel(root, path)} has {lines} lines (at most {MAX_MODULE_LINES})"
        for path in [*driver_modules(root).values(), *collection_plugins(root)]
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]


def _layer_of(root: Path, path: Path) -> str:
    where = rel(root, path)
    if where.startswith(INTERFACE):
        return "interface"
    if where == ADAPTER:
        return "adapter"
    if where.startswith("cosmos_driver/lab/"):
        return "lab"
    return "domain"


def interface_imported_below(root: Path) -> list[str]:
    """Interface layer: it calls the domain, never the other way round (it holds no logic
    anything else could need)."""
    found = []
    for path in [root / "tasks.py", *driver_modules(root).values()]:
        if not path.exists() or _layer_of(root, path) == "interface":
            continue
        for name in imported_modules(path):
            if name in ("tasks", "cosmos_driver.cli") or name.startswith("cosmos_driver.tasks"):
                found.append(f"{rel(root, path)} imports the interface ({name})")
    return found


def impure_domain(root: Path) -> list[str]:
    """Domain layer: pure Python, testable without a host (no processes, no Ansible)."""
    return [
        f"{rel(root, path)} imports {name}"
        for path in driver_modules(root).values()
        if _layer_of(root, path) == "domain"
        for name in sorted(imported_modules(path))
        if name.split(".")[0] in DOMAIN_FORBIDS
    ]


def scheduler_knows_a_backend(root: Path) -> list[str]:
    """The backend seam: the scheduler reaches hosts only through a Backend."""
    return [
        f"{side} imports {name}"
        for side in SEAM_SIDE
        if (root / side).exists()
        for name in sorted(imported_modules(root / side))
        if name in BACKEND_SIDE
    ]


# Each row of docs/architecture.md's layer table and the rules that enforce it.
LAYER_RULES = {
    "Interface": [interface_imported_below],
    "Domain": [impure_domain, scheduler_knows_a_backend],
    "Adapter": [runner_imports_outside_adapter],
    "Ansible content": [engine_commands_in_python, engine_commands_in_ansible],
}


RULES = [
    forbidden_imports,
    runner_imports_outside_adapter,
    ssh_subprocesses,
    engine_commands_in_python,
    engine_commands_in_ansible,
    eager_log_formatting,
    interface_imported_below,
    impure_domain,
    scheduler_knows_a_backend,
    import_cycles,
    oversized_modules,
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_repository_keeps_the_rule(rule):
    assert rule(ROOT) == []


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the code and Ansible content to plant violations in."""
    for name in ("cosmos_driver",):
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
        f"{COLLECTION}/roles/cosmos_job/tasks/collect.yml",
        "\n- name: Sneak\n  ansible.builtin.command:\n    argv: [docker, rm, -f, x]\n",
    ),
    eager_log_formatting: ("cosmos_driver/store.py", "\nlog.info(f'{len(__name__)} bytes')\n"),
    interface_imported_below: ("cosmos_driver/records.py", "\nimport cosmos_driver.tasks.common\n"),
    impure_domain: ("cosmos_driver/run/files.py", "\nimport subprocess\n"),
    scheduler_knows_a_backend: (
        "cosmos_driver/scheduler.py",
        "\nfrom cosmos_driver.device_pool import DevicePool\n",
    ),
    # store imports records; records importing store closes a cycle.
    import_cycles: ("cosmos_driver/records.py", "\nfrom cosmos_driver import store\n"),
    oversized_modules: ("cosmos_driver/ids.py", "\n" * MAX_MODULE_LINES),
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_finds_a_planted_violation(rule, planted):
    target, text = PLANTS[rule]
    assert rule(planted) == []
    _append(planted / target, text)
    assert rule(planted), f"{rule.__name__} missed a violation planted in {target}"


def test_the_places_that_spell_engine_commands_exist():
    """A file renamed or moved away from the named set would leave a stale exemption."""
    assert sorted(p for p in CONTAINER_PLACES if not (ROOT / p).is_file()) == []


def test_an_engine_command_in_a_module_util_outside_the_named_set_is_found(planted):
    staging = f"{COLLECTION}/plugins/module_utils/cosmos_staging.py"
    _append(planted / staging, "\nCMD = ['podman', 'rm', '-f', 'x']\n")
    assert engine_commands_in_python(planted) == [f"{staging} spells a container-engine command"]


def test_shell_task_that_is_not_the_engine_is_allowed(planted):
    _append(
        planted / f"{COLLECTION}/roles/cosmos_job/tasks/collect.yml",
        "\n- name: Fine\n  ansible.builtin.command:\n    argv: [nvidia-smi, -L]\n",
    )
    assert engine_commands_in_ansible(planted) == []


def test_every_layer_of_the_docs_table_has_a_rule():
    table = (ROOT / "docs/architecture.md").read_text().split("| Layer | Where | Rule |")[1]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip())
    assert rows == list(LAYER_RULES)
    assert len(rows) == 4
    assert all(LAYER_RULES[row] for row in rows)


def _fake_package(root: Path, modules: dict[str, str]) -> Path:
    """A throwaway cosmos_driver package of `modules` (relative path -> source)."""
    for name, text in {"__init__.py": "", **modules}.items():
        path = root / "cosmos_driver" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    "modules",
    [
        {"a.py": "from cosmos_driver import b\n", "b.py": "import cosmos_driver.a\n"},
        {  # only for type checking, and through a package: still a cycle
            "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from cosmos_driver.p.c import C\n",
            "p/__init__.py": "from cosmos_driver.p import c\n",
            "p/c.py": "from cosmos_driver.a import A\n",
        },
        {"p/__init__.py": "", "p/x.py": "from . import y\n", "p/y.py": "from .x import X\n"},
        {"a.py": "def f():\n    from cosmos_driver import b\n", "b.py": "import cosmos_driver.a\n"},
    ],
    ids=["direct", "type-checking-through-a-package", "relative", "in-a-function"],
)
def test_an_import_cycle_in_a_fake_package_is_found(tmp_path, modules):
    found = import_cycles(_fake_package(tmp_path, modules))
    assert len(found) == 1, found


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path):
    root = _fake_package(
        tmp_path,
        {"p/__init__.py": "from cosmos_driver.p import c\n", "p/c.py": "import os\n"},
    )
    assert import_cycles(root) == []


def test_a_module_over_the_limit_in_a_fake_package_is_found(tmp_path):
    root = _fake_package(
        tmp_path,
        {
            "small.py": "x = 1\n" * MAX_MODULE_LINES,
            "big.py": "x = 1\n" * (MAX_MODULE_LINES + 1),
            "lab/simulator/huge.py": "x = 1\n" * 1000,
        },
    )
    assert oversized_modules(root) == ["cosmos_driver/big.py has 401 lines (at most 400)"]


def test_the_size_rule_measures_every_plugin_kind():
    measured = {path.parent.name for path in collection_plugins(ROOT)}
    assert measured >= PLUGIN_KINDS


@pytest.mark.parametrize(
    "target",
    [
        "modules/cosmos_container.py",
        "module_utils/cosmos_staging.py",
        "action/cosmos_fetch.py",
        "lookup/cosmos_secret.py",
        "filter/nvidia_smi.py",
    ],
)
def test_an_oversized_plugin_of_the_collection_is_found(planted, target):
    path = planted / PLUGINS / target
    assert oversized_modules(planted) == []
    _append(path, "\n" * MAX_MODULE_LINES)
    lines = len(path.read_text().splitlines())
    assert oversized_modules(planted) == [
        f"{PLUGINS}/{target} has {lines} lines (at most {MAX_MODULE_LINES})"
    ]
