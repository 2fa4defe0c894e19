"""Engine modules: cosmos_container's setup and health actions against community.docker.

On one lab host (a real sshd on loopback, the lab's own dockerd), one playbook run calls,
--repeats times each and interleaved (the two sides alternate which goes first):

- image_info:  cosmos.driver.cosmos_container action=image_info
               against community.docker.docker_image_info, for the same image;
- engine_info: action=engine_info against community.docker.docker_host_info;
- run_once:    action=run_once against community.docker.docker_container
               (detach: false, cleanup: true), the health smoke test.

The time of a call is Ansible's own for the task on that host (from the task's start on the
host to its result, ansible-runner's `duration`): building and sending the module, starting
Python on the host, the module's imports and its work. The first call of each module is a
warm-up and is not counted. It prints the median per call of each side and their ratio,
checks that both sides report the same facts (exit 1 if not), and records the functional
facts: community.docker against the host's own Python, each side against an engine that
does not answer, and the size of what community.docker needs.

    .venv/bin/python -m bench.engine_modules [--repeats 10] [--host lab-1]
        [--inventory FILE] [--collections DIR] [--no-fetch]

community.docker (and containers.podman, for its size) come from --collections (default
/var/tmp/cosmos-bench-engine/collections, or a folder of ANSIBLE_COLLECTIONS_PATH); when
absent, they are taken from the `ansible` package on PyPI (`pip download ansible==11.13.0
--no-deps`, Galaxy need not be reachable) unless --no-fetch. On the host, a virtual
environment with `requests` (community.docker's requirement) is made under
<cosmos_remote_root>/bench-engine/python and kept for the next run; both sides run with that
Python, so only the module differs. The lab is not started: `invoke lab.up` first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from cosmos_driver import content
from cosmos_driver.ansible_adapter import inventory_hosts
from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths

ANSIBLE_RELEASE = "ansible==11.13.0"
CACHE = Path("/var/tmp/cosmos-bench-engine")
COLLECTIONS = ("community/docker", "containers/podman", "community/library_inventory_filtering_v1")
IMAGE = "cosmos-bench-engine:latest"
LABELS = {"cosmos.bench": "engine_modules"}
SMOKE = ["/bin/echo", "smoke ok"]
ABSENT_SOCKET = "unix:///var/tmp/cosmos-bench-engine/absent.sock"
# The collection's host-wide defaults (cosmos_engine, cosmos_remote_root, ...), below the
# inventory's variables, as the collection's own playbooks take them.
HOST_DEFAULTS = {"role": "cosmos.driver.cosmos_host"}
CASES = ("image_info", "engine_info", "run_once")
SIDES = ("cosmos", "community")
# Run on the host: the bytes requests and what it pulls in take in the bench's Python.
DEPS_SIZE = (
    "import importlib.metadata as m, json\n"
    "out = {}\n"
    "for name in ('requests', 'urllib3', 'idna', 'charset-normalizer', 'certifi'):\n"
    "    d = m.distribution(name)\n"
    "    out[name] = [d.version, sum(f.size or 0 for f in d.files or [])]\n"
    "print(json.dumps(out))\n"
)

# Run on the host: what importing requests costs a fresh Python there (median of 5, seconds).
REQUESTS_IMPORT = (
    "import statistics, subprocess, sys, time\n"
    "def once(code):\n"
    "    begin = time.perf_counter()\n"
    "    subprocess.run([sys.executable, '-c', code], check=True)\n"
    "    return time.perf_counter() - begin\n"
    "print(statistics.median(once('import requests') - once('pass') for _ in range(5)))\n"
)


# --- the collections --------------------------------------------------------------------


def has_collections(folder: Path) -> bool:
    return all((folder / "ansible_collections" / c / "MANIFEST.json").exists() for c in COLLECTIONS)


def find_collections(wanted: Path, fetch: bool) -> Path:
    """A folder holding ansible_collections/community/docker (and containers/podman)."""
    env = [Path(p) for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":") if p]
    for folder in [wanted, *env]:
        if has_collections(folder):
            return folder
    if not fetch:
        raise SystemExit(missing_message(wanted, "--no-fetch"))
    print(f"fetching community.docker and containers.podman from PyPI ({ANSIBLE_RELEASE})")
    with tempfile.TemporaryDirectory(prefix="bench-engine-wheel-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", ANSIBLE_RELEASE, "--no-deps", "-d", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(Path(tmp).glob("ansible-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise SystemExit(missing_message(wanted, (proc.stderr or proc.stdout)[-400:]))
        extract_collections(wheels[0], wanted)
    return wanted


def extract_collections(wheel: Path, folder: Path) -> None:
    prefixes = tuple(f"ansible_collections/{c}/" for c in COLLECTIONS)
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.startswith(prefixes)]
        archive.extractall(folder, members)


def missing_message(folder: Path, why: str) -> str:
    return (
        f"community.docker and containers.podman are not in {folder} (nor in "
        f"ANSIBLE_COLLECTIONS_PATH) and were not fetched: {why.strip()}\n"
        f"Get them with `pip download {ANSIBLE_RELEASE} --no-deps -d DIR` and unzip "
        f"{', '.join('ansible_collections/' + c for c in COLLECTIONS)} from the wheel into "
        f"{folder} (or `ansible-galaxy collection install community.docker containers.podman "
        f"-p {folder}` where Galaxy is reachable), or pass --collections DIR."
    )


def collection_size(folder: Path) -> dict[str, Any]:
    """Files, bytes and plugin Python lines of one extracted collection."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    plugin_lines = sum(len(p.read_bytes().splitlines()) for p in folder.glob("plugins/**/*.py"))
    manifest = yaml.safe_load((folder / "MANIFEST.json").read_text())["collection_info"]
    return {
        "version": manifest["version"],
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "modules": len(list(folder.glob("plugins/modules/*.py"))),
        "plugin_lines": plugin_lines,
    }


# --- the image --------------------------------------------------------------------------


def ldd_paths(text: str) -> list[str]:
    """The library files an `ldd` listing names (not the vDSO, which has no file)."""
    paths = []
    for line in text.splitlines():
        target = line.split("=>", 1)[-1].strip().split(" ", 1)[0]
        if target.startswith("/"):
            paths.append(target)
    return paths


def image_context(folder: Path) -> Path:
    """A build context of a tiny image: /bin/echo and the libraries it loads, from scratch."""
    rootfs = folder / "context" / "rootfs"
    echo = Path(shutil.which("echo") or "/bin/echo").resolve()
    ldd = subprocess.run(["ldd", str(echo)], capture_output=True, text=True, check=True)
    for source, name in [(str(echo), "/bin/echo"), *((p, p) for p in ldd_paths(ldd.stdout))]:
        target = rootfs / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(source).resolve(), target)
    (folder / "context" / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
    return folder / "context"


# --- the playbooks ----------------------------------------------------------------------


def schedule(cases: tuple[str, ...], repeats: int) -> list[tuple[str, str, int]]:
    """(case, side, index) in the order they run: a warm-up pair (index -1) per case, then
    the repeats, the two sides of a case back to back, the first of them alternating. Each
    round starts with a ping: the floor (ssh, Python on the host, a module that does nothing)."""
    order = []
    for index in range(-1, repeats):
        order.append(("floor", "ping", index))
        for case in cases:
            sides = SIDES if index % 2 == 0 else SIDES[::-1]
            order += [(case, side, index) for side in sides]
    return order


def task_name(case: str, side: str, index: int) -> str:
    return f"bench {case} {side} {index}"


def parse_task_name(name: str) -> tuple[str, str, int] | None:
    parts = name.split(" ")
    if len(parts) != 4 or parts[0] != "bench":
        return None
    return parts[1], parts[2], int(parts[3])


def timed_task(case: str, side: str, index: int) -> dict[str, Any]:
    if case == "floor":
        return {"name": task_name(case, side, index), "ansible.builtin.ping": {}}
    ours = {"engine": "{{ cosmos_engine }}", "engine_env": "{{ cosmos_engine_env }}"}
    theirs = {"docker_host": "{{ bench_docker_host }}"}
    calls = {
        ("image_info", "cosmos"): {"action": "image_info", "image": IMAGE, **ours},
        ("image_info", "community"): {"name": IMAGE, **theirs},
        ("engine_info", "cosmos"): {"action": "engine_info", **ours},
        ("engine_info", "community"): theirs,
        ("run_once", "cosmos"): {
            "action": "run_once",
            "image": IMAGE,
            "command": SMOKE,
            "engine_args": ["--network", "none"],
            **ours,
        },
        ("run_once", "community"): {
            "name": f"cosmos-bench-once-{index + 1}",
            "image": IMAGE,
            "command": SMOKE,
            "network_mode": "none",
            "detach": False,
            "cleanup": True,
            **theirs,
        },
    }
    community = {
        "image_info": "docker_image_info",
        "engine_info": "docker_host_info",
        "run_once": "docker_container",
    }
    module = (
        "cosmos.driver.cosmos_container"
        if side == "cosmos"
        else f"community.docker.{community[case]}"
    )
    return {"name": task_name(case, side, index), module: calls[case, side]}


def host_vars() -> dict[str, str]:
    return {
        "bench_dir": "{{ cosmos_remote_root }}/bench-engine",
        "bench_python": "{{ cosmos_remote_root }}/bench-engine/python/bin/python",
        "bench_docker_host": (
            "{{ cosmos_engine_env.DOCKER_HOST | default('unix:///var/run/docker.sock') }}"
        ),
    }


def setup_play(host: str, context: Path) -> dict[str, Any]:
    """The bench's Python (with requests) and image on the host, and the functional probes."""
    system_python = "{{ ansible_python_interpreter | default('/usr/bin/python3') }}"
    with_bench_python = {"ansible_python_interpreter": "{{ bench_python }}"}
    cosmos_engine = {"engine": "{{ cosmos_engine }}", "engine_env": "{{ cosmos_engine_env }}"}
    return {
        "name": "Bench setup",
        "hosts": host,
        "gather_facts": False,
        "roles": [HOST_DEFAULTS],
        "vars": host_vars(),
        "tasks": [
            {
                "name": "probe community with the host python",
                "community.docker.docker_image_info": {
                    "name": IMAGE,
                    "docker_host": "{{ bench_docker_host }}",
                },
                "ignore_errors": True,
            },
            {
                "name": "Folder",
                "ansible.builtin.file": {
                    "path": "{{ bench_dir }}",
                    "state": "directory",
                    "mode": "0755",
                },
            },
            {
                "name": "Image context",
                "ansible.builtin.copy": {
                    "src": f"{context}/",
                    "dest": "{{ bench_dir }}/context/",
                    "mode": "preserve",
                },
            },
            {
                "name": "Python for community.docker",
                "ansible.builtin.command": {
                    "argv": [system_python, "-m", "venv", "{{ bench_dir }}/python"],
                    "creates": "{{ bench_python }}",
                },
            },
            {
                "name": "requests for community.docker",
                "ansible.builtin.command": {
                    "argv": ["{{ bench_dir }}/python/bin/pip", "install", "--quiet", "requests"],
                },
                "changed_when": False,
            },
            {
                "name": "probe deps size",
                "ansible.builtin.command": {"argv": ["{{ bench_python }}", "-c", DEPS_SIZE]},
                "changed_when": False,
            },
            {
                "name": "probe requests import",
                "ansible.builtin.command": {"argv": ["{{ bench_python }}", "-c", REQUESTS_IMPORT]},
                "changed_when": False,
            },
            {
                "name": "Image",
                "cosmos.driver.cosmos_container": {
                    "action": "build",
                    "image": IMAGE,
                    "context": "{{ bench_dir }}/context",
                    "labels": LABELS,
                    **cosmos_engine,
                },
            },
            {
                "name": "probe absent engine cosmos",
                "cosmos.driver.cosmos_container": {
                    "action": "engine_info",
                    "engine": "{{ cosmos_engine }}",
                    "engine_env": {"DOCKER_HOST": ABSENT_SOCKET},
                    "timeout": 10,
                },
            },
            {
                "name": "probe absent engine community",
                "community.docker.docker_host_info": {"docker_host": ABSENT_SOCKET},
                "vars": with_bench_python,
                "ignore_errors": True,
            },
        ],
    }


def measure_play(host: str, repeats: int, cases: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": "Bench measure",
        "hosts": host,
        "gather_facts": False,
        "roles": [HOST_DEFAULTS],
        "vars": {**host_vars(), "ansible_python_interpreter": "{{ bench_python }}"},
        "tasks": [timed_task(*step) for step in schedule(cases, repeats)],
    }


def teardown_play(host: str) -> dict[str, Any]:
    return {
        "name": "Bench teardown",
        "hosts": host,
        "gather_facts": False,
        "roles": [HOST_DEFAULTS],
        "vars": {**host_vars(), "ansible_python_interpreter": "{{ bench_python }}"},
        "tasks": [
            {
                "name": "No image",
                "community.docker.docker_image": {
                    "name": IMAGE,
                    "state": "absent",
                    "force_absent": True,
                    "docker_host": "{{ bench_docker_host }}",
                },
            },
            {
                "name": "No context",
                "ansible.builtin.file": {"path": "{{ bench_dir }}/context", "state": "absent"},
            },
        ],
    }


class Events:
    """The results of every task of a playbook run, by task name, with their durations."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.durations: dict[str, float] = {}
        self.failed: set[str] = set()
        self.failures: list[str] = []

    def __call__(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event")
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            self.results[data.get("task", "")] = data.get("res") or {}
            self.durations[data.get("task", "")] = float(data.get("duration") or 0.0)
            if kind != "runner_on_ok":
                self.failed.add(data.get("task", ""))
            if kind != "runner_on_ok" and not data.get("ignore_errors"):
                self.failures.append(f"{data.get('task')}: {(data.get('res') or {}).get('msg')}")
        return False


def run_play(play: dict[str, Any], inventory: Path, collections: Path, work: Path) -> Events:
    private = Path(tempfile.mkdtemp(prefix="runner-", dir=work))
    playbook = private / "bench.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    events = Events()
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(playbook),
        inventory=str(inventory),
        envvars={
            "ANSIBLE_CONFIG": str(content.ANSIBLE_CFG),
            "ANSIBLE_COLLECTIONS_PATH": f"{collections}:{content.COLLECTIONS_PATH}",
            "ANSIBLE_NOCOLOR": "1",
        },
        quiet=True,
        event_handler=events,
        settings={"suppress_ansible_output": True},
    )
    if runner.status != "successful" or events.failures:
        tail = "\n".join(events.failures) or runner.stdout.read()[-2000:]
        raise SystemExit(f"{play['name']} failed ({runner.status}):\n{tail}")
    return events


# --- the figures ------------------------------------------------------------------------


def summarize(durations: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per case: each side's median seconds per call and calls counted (warm-ups left out),
    and cosmos / community of the medians; and the floor's (ping's) median."""
    samples: dict[tuple[str, str], list[float]] = {}
    for name, seconds in durations.items():
        parsed = parse_task_name(name)
        if parsed and parsed[2] >= 0:
            samples.setdefault(parsed[:2], []).append(seconds)
    rows = {}
    for case in dict.fromkeys(case for case, _ in samples):
        ours, theirs = samples.get((case, "cosmos"), []), samples.get((case, "community"), [])
        if ours and theirs:
            row = {"cosmos_s": statistics.median(ours), "community_s": statistics.median(theirs)}
            row["ratio"] = row["cosmos_s"] / row["community_s"]
            row["calls"] = min(len(ours), len(theirs))
            rows[case] = row
    floor = samples.get(("floor", "ping"))
    if floor:
        rows["floor"] = {"ping_s": statistics.median(floor), "calls": len(floor)}
    return rows


def same_facts(case: str, ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Where the two sides' last results disagree on what the roles read from them."""
    if case == "image_info":
        image = (theirs.get("images") or [{}])[0]
        pairs = [
            ("labels", ours.get("image_labels"), (image.get("Config") or {}).get("Labels")),
            ("id", ours.get("image_id"), image.get("Id")),
        ]
    elif case == "engine_info":
        info = theirs.get("host_info") or {}
        pairs = [
            ("version", ours.get("version"), info.get("ServerVersion")),
            ("runtimes", ours.get("runtimes"), sorted(info.get("Runtimes") or {})),
        ]
    else:
        container = theirs.get("container") or {}
        pairs = [
            ("output", (ours.get("stdout") or "").strip(), (container.get("Output") or "").strip()),
            ("exit", ours.get("exit_code"), theirs.get("status")),
        ]
    return [f"{case} {what}: {a!r} != {b!r}" for what, a, b in pairs if a != b]


def last_result(events: Events, case: str, side: str) -> dict[str, Any]:
    named = [(parse_task_name(n), r) for n, r in events.results.items()]
    return max((p[2], r) for p, r in named if p and p[:2] == (case, side))[1]


def report_probes(events: Events) -> None:
    name = "probe community with the host python"
    probe = events.results[name]
    state = f"the task failed: {probe.get('msg')}" if name in events.failed else "works"
    print(f"community.docker with the host's own Python: {state}")
    sizes = yaml.safe_load(events.results["probe deps size"]["stdout"])
    total = sum(size for _, size in sizes.values())
    versions = ", ".join(f"{name} {version}" for name, (version, _) in sizes.items())
    print(f"what it needs on the host: {versions}: {total / 1e6:.1f} MB installed (RECORD)")
    seconds = float(events.results["probe requests import"]["stdout"])
    print(f"importing requests on the host: {seconds * 1000:.0f}ms (median of 5 fresh Pythons)")
    ours = events.results["probe absent engine cosmos"]
    print(f"engine_info, engine absent: ok, running={ours.get('running')}: {ours.get('error')}")
    name = "probe absent engine community"
    theirs = events.results[name]
    state = "the task failed" if name in events.failed else "ok"
    print(f"docker_host_info, engine absent: {state}: {theirs.get('msg')}")


def report_sizes(collections: Path) -> None:
    for name in COLLECTIONS:
        size = collection_size(collections / "ansible_collections" / name)
        print(
            f"{name.replace('/', '.')} {size['version']}: {size['files']} files, "
            f"{size['bytes'] / 1e6:.1f} MB, {size['modules']} modules, "
            f"{size['plugin_lines']} lines of plugin Python"
        )


def report(events: Events, cases: tuple[str, ...]) -> int:
    rows = summarize(events.durations)
    floor = rows.pop("floor", {"ping_s": 0.0})
    print(f"floor (ansible.builtin.ping): {floor['ping_s'] * 1000:.0f}ms per call, median")
    print(
        f"{'ms per call':12} {'cosmos_container':>17} {'community.docker':>17} "
        f"{'cosmos/community':>17} {'community-cosmos':>17}"
    )
    for case, row in rows.items():
        gap = row["community_s"] - row["cosmos_s"]
        print(
            f"{case:12} {row['cosmos_s'] * 1000:17.0f} {row['community_s'] * 1000:17.0f} "
            f"{row['ratio']:17.2f} {gap * 1000:17.0f}   ({row['calls']:.0f} calls each, medians)"
        )
    problems = [
        problem
        for case in cases
        for problem in same_facts(
            case, last_result(events, case, "cosmos"), last_result(events, case, "community")
        )
    ]
    for problem in problems:
        print(f"DIFFERENT: {problem}")
    return 1 if problems else 0


def lab_inventory() -> Path:
    status = lab_control.status(LabPaths.from_env())
    if not status["running"] or not status["inventory"]:
        raise SystemExit("the lab is not up (this bench does not start it): `invoke lab.up`")
    return Path(status["inventory"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--host", help="inventory host (default: the first)")
    parser.add_argument("--inventory", type=Path, help="default: the lab's")
    parser.add_argument("--collections", type=Path, default=CACHE / "collections")
    parser.add_argument("--no-fetch", action="store_true", help="never download the collections")
    parser.add_argument("--cases", default=",".join(CASES), help="of " + ",".join(CASES))
    args = parser.parse_args()
    cases = tuple(c for c in args.cases.split(",") if c)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    collections = find_collections(args.collections, not args.no_fetch)
    inventory = args.inventory or lab_inventory()
    hosts = inventory_hosts(inventory)
    host = args.host or next(iter(hosts))
    if hosts[host].get("cosmos_engine", "docker") != "docker":
        raise SystemExit(f"{host}: community.docker speaks to docker only; this host has podman")
    report_sizes(collections)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        work = Path(tmp)
        probes = run_play(setup_play(host, image_context(work)), inventory, collections, work)
        report_probes(probes)
        try:
            measure = measure_play(host, args.repeats, cases)
            measured = run_play(measure, inventory, collections, work)
        finally:
            run_play(teardown_play(host), inventory, collections, work)
    print(f"{host}, {args.repeats} interleaved calls of each after a warm-up:")
    sys.exit(report(measured, cases))


if __name__ == "__main__":
    main()
