"""Rules for the tests themselves.

- A test module imports no other test module (nor a conftest.py): shared fakes and builders
  live in tests/fakes/, fixtures in conftest.py.
- `assert all(...)` and `assert not any(...)` pass on an empty list, so each one has the
  size of what it looks at checked in the same assert or in one of the three statements
  just before it: `len(xs)` in an assert, `assert xs` (or `xs and …`), `x in xs`, or `xs`
  (or a comprehension over it) compared with `==` to a literal such as `[…]` or `[v] * n`.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
ALLOWED = "tests.fakes"
# How many statements before an assert all()/not any() may hold the check of its size.
WINDOW = 3
LITERALS = (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Constant)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def python_sources() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


# --- imports between test modules ----------------------------------------------------------


def _allowed(module: str) -> bool:
    return module == ALLOWED or module.startswith(ALLOWED + ".")


def foreign_test_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of each import of a test module: anything under tests/ but tests.fakes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name)
                for alias in node.names
                if alias.name.split(".")[0] == "tests" and not _allowed(alias.name)
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                found.append((node.lineno, "." * node.level + module))
            elif module == "tests":
                found += [
                    (node.lineno, f"tests.{alias.name}")
                    for alias in node.names
                    if not _allowed(f"tests.{alias.name}")
                ]
            elif module.startswith("tests.") and not _allowed(module):
                found.append((node.lineno, module))
    return found


def test_no_test_module_imports_another():
    sources = python_sources()
    assert len(sources) > 40
    found = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sources
        for line, module in foreign_test_imports(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "move what is shared to tests/fakes/<topic>.py"


def test_the_import_check_finds_each_form():
    source = (
        "import tests.unit.test_video\n"
        "from tests.unit.conftest import make_mp4\n"
        "from tests import unit\n"
        "from .test_video import ffprobe\n"
        "from tests.fakes.videos import make_mp4\n"
        "from tests import fakes\n"
        "import tests.fakes.cli\n"
        "from cosmos_driver.tests import nothing\n"
    )
    assert foreign_test_imports(source) == [
        (1, "tests.unit.test_video"),
        (2, "tests.unit.conftest"),
        (3, "tests.unit"),
        (4, ".test_video"),
    ]


# --- assert all() / not any() without a size -----------------------------------------------


def _examined(operand: ast.expr) -> ast.expr | None:
    """What an `all(…)` or `not any(…)` operand iterates over; None for anything else."""
    if isinstance(operand, ast.UnaryOp) and isinstance(operand.op, ast.Not):
        call, name = operand.operand, "any"
    else:
        call, name = operand, "all"
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == name
        and len(call.args) == 1
    ):
        return None
    arg = call.args[0]
    return arg.generators[0].iter if isinstance(arg, COMPREHENSIONS) else arg


def _forms(target: ast.expr) -> set[str]:
    """`xs`, and for `xs.values()` (or keys, items) also `xs`."""
    forms = {ast.unparse(target)}
    if (
        isinstance(target, ast.Call)
        and not target.args
        and isinstance(target.func, ast.Attribute)
        and target.func.attr in ("values", "keys", "items")
    ):
        forms.add(ast.unparse(target.func.value))
    return forms


def _over(node: ast.expr, forms: set[str]) -> bool:
    """`node` is the target itself, or a comprehension over it."""
    if isinstance(node, COMPREHENSIONS):
        return ast.unparse(node.generators[0].iter) in forms
    return ast.unparse(node) in forms


def _fixed(node: ast.expr) -> bool:
    """A literal, or a literal list times a number: something of a known size."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return isinstance(node.left, LITERALS) or isinstance(node.right, LITERALS)
    return isinstance(node, LITERALS)


def _compares(node: ast.Compare, forms: set[str]) -> bool:
    """`x in xs`, or `xs` (or a comprehension over it) `==` something of a known size."""
    sides = [node.left, *node.comparators]
    for op, left, right in zip(node.ops, sides, sides[1:], strict=False):
        if isinstance(op, ast.In) and ast.unparse(right) in forms:
            return True
        if isinstance(op, ast.Eq) and (
            (_over(left, forms) and _fixed(right)) or (_over(right, forms) and _fixed(left))
        ):
            return True
    return False


def _is_len_of(node: ast.AST, forms: set[str]) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "len"
        and len(node.args) == 1
        and ast.unparse(node.args[0]) in forms
    )


def _sizes(test: ast.expr, target: ast.expr) -> bool:
    """Whether the assert `test` checks the size of `target`."""
    if isinstance(target, ast.BinOp) and isinstance(target.op, ast.Add):
        return _sizes(test, target.left) and _sizes(test, target.right)
    forms = _forms(target)
    truthy = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else []
    if any(ast.unparse(operand) in forms for operand in [test, *truthy]):
        return True
    return any(
        _is_len_of(node, forms) or (isinstance(node, ast.Compare) and _compares(node, forms))
        for node in ast.walk(test)
    )


def _blocks(tree: ast.AST):
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield block


def unsized_asserts(source: str) -> list[int]:
    """Lines of the asserts all()/not any() whose target's size nothing near checks."""
    found = []
    for block in _blocks(ast.parse(source)):
        for index, statement in enumerate(block):
            if not isinstance(statement, ast.Assert):
                continue
            test = statement.test
            operands = (
                test.values
                if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And)
                else [test]
            )
            before = [
                s.test for s in block[max(0, index - WINDOW) : index] if isinstance(s, ast.Assert)
            ]
            for operand in operands:
                target = _examined(operand)
                if target is not None and not any(_sizes(t, target) for t in [test, *before]):
                    found.append(statement.lineno)
    return sorted(set(found))


def test_every_assert_all_or_not_any_also_checks_a_size():
    sources = [path for path in python_sources() if path.name.startswith("test_")]
    assert len(sources) > 40
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources
        for line in unsized_asserts(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "assert len(...) (or non-emptiness) beside these all()/not any()"


def test_the_size_check_accepts_each_form_and_flags_the_rest():
    accepted = """
def test_ok(xs, d, a, b):
    assert len(xs) == 2
    assert all(x > 0 for x in xs)
    assert xs and not any(x < 0 for x in xs)
    assert 3 in a
    assert not any(x is None for x in a)
    assert d == {"k": 1}
    assert all(v for v in d.values())
    assert [y.s for y in b] == ["ok"] * 4
    assert all(y.s for y in b)
    assert len(a) == len(b) == 3
    assert all(a + b)
"""
    assert unsized_asserts(accepted) == []
    flagged = """
def test_bad(xs, ys):
    assert all(x > 0 for x in xs)
    assert ys == other
    assert not any(ys)
    with open("f") as f:
        assert all(f)
    assert len(xs) == 1
    step = 1
    step += 1
    step += 1
    assert all(xs)
"""
    assert unsized_asserts(flagged) == [3, 5, 7, 12]
