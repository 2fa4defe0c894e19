"""The wheel is the tool: built from this checkout, installed into a fresh venv outside it,
its own `cosmos` runs the shipped demo batch on the lab, with no checkout in sight.

Before the collection, a wheel held only cosmos_driver/*.py and every host command failed
("no playbooks/ under …"); this test fails the same way if the Ansible content, the driver's
ansible.cfg or the demo batch stops travelling in the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a wheel is built from: the package and its metadata; the checkout's other top-level
# folders (and its root examples link) stay behind, so nothing can lean on them.
PACKAGED = {"cosmos_driver", "pyproject.toml", "README.md"}


def _not_packaged(folder: str, names: list[str]) -> list[str]:
    if Path(folder) == ROOT:
        return [name for name in names if name not in PACKAGED]
    return [name for name in names if name in ("__pycache__", ".pytest_cache")]


pytestmark = pytest.mark.lab


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


def _outside_env(venv: Path) -> dict[str, str]:
    """The environment of a user who installed the wheel: no checkout venv, no PYTHONPATH."""
    checkout_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != checkout_bin]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv, outside the checkout, with the wheel of this checkout installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_not_packaged)
    env = _outside_env(work / "venv")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", "dist", str(source)],
         work, env)  # fmt: skip
    wheels = sorted((work / "dist").glob("cosmos_driver-*.whl"))
    assert len(wheels) == 1, wheels
    _run([sys.executable, "-m", "venv", "venv"], work, env)
    _run([str(work / "venv/bin/pip"), "install", "-q", str(wheels[0])], work, env)
    return work


def test_installed_package_is_not_the_checkout(installed):
    python = str(installed / "venv/bin/python")
    where = _run([python, "-c", "import cosmos_driver; print(cosmos_driver.__file__)"],
                 installed, _outside_env(installed / "venv"))  # fmt: skip
    assert Path(where.strip()).is_relative_to(installed / "venv")


def test_wheel_venv_runs_the_demo_on_the_lab(installed, lab):
    """`cosmos demo` from the fresh venv: the lab, then examples/demo.yaml from the wheel."""
    env = _outside_env(installed / "venv")
    env["COSMOS_INVENTORY"] = str(lab.inventory)
    state = installed / "state"
    out = _run([str(installed / "venv/bin/cosmos"), "demo", "--state-dir", str(state), "--json"],
               installed, env)  # fmt: skip
    result = json.loads(out)
    states = [run["state"] for run in result["runs"]]
    assert len(states) == 2, result
    assert states == ["succeeded", "succeeded"], result
    for run in result["runs"]:
        outputs = list((state / "runs" / run["run_id"] / "outputs").glob("*.mp4"))
        assert len(outputs) == 1, run
        assert outputs[0].stat().st_size > 0
    report = installed / "demo.html"  # the dashboard's templates and style ship in the wheel
    _run([str(installed / "venv/bin/cosmos"), "report", "--batch", result["batch_id"],
          "-o", str(report), "--state-dir", str(state)], installed, env)  # fmt: skip
    assert report.read_text().count("data:image/jpeg;base64,") == 2  # a thumbnail per run


def test_wheel_venv_ansible_doc_finds_the_collection(installed):
    """The collection inside the installed package documents its modules with ansible-doc."""
    env = _outside_env(installed / "venv")
    package = _run([str(installed / "venv/bin/python"), "-c",
                    "from cosmos_driver import content; print(content.COLLECTIONS_PATH)"],
                   installed, env).strip()  # fmt: skip
    env["ANSIBLE_COLLECTIONS_PATH"] = package
    doc = str(installed / "venv/bin/ansible-doc")
    out = _run([doc, "--json", "cosmos.driver.cosmos_container"], installed, env)
    docs = json.loads(out)["cosmos.driver.cosmos_container"]["doc"]
    assert docs["module"] == "cosmos_container"
