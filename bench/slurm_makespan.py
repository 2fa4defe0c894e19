"""Slurm makespan: a sweep of short runs on the lab's Slurm beside the SSH backend.

One sweep of --runs short runs of one job (COSMOS_SIM_DURATION --duration) runs twice in the
same session with `cosmos infer --batch … --json`, each on a fresh state folder: on the lab's
SSH inventory (the reference: 2 hosts × 2 simulated GPUs = 4 slots) and on the same lab's
Slurm through login host lab-1 (`cosmos_slurm_max_parallel: 4`, the same 4 slots on the same
dockerd). For each it prints, in seconds from the command's start and from the records'
stamps: the wall time; the first container start; the submission time (Slurm: the last run's
`submitted to Slurm` note; SSH: the last container start) and the last container start; the
makespan (to the last run's verdict); the ideal (the runs' container times summed / slots),
makespan / ideal and the slot time lost per run; then the mean container time, the most
containers at once, the Slurm arrays, a common ideal (at the lower mean container time: a
busier backend's containers run slower on the same CPUs) and Slurm / SSH.

    .venv/bin/python -m bench.slurm_makespan [--runs 200] [--duration 1] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab import slurm
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.run.files import EXIT_FILE
from cosmos_driver.run_times import parse_time

ROOT = Path(__file__).resolve().parents[1]
COSMOS = str(Path(sys.executable).parent / "cosmos")
LOGIN = "lab-1"
SUBMITTED = "submitted to Slurm as "
Span = tuple[dt.datetime, dt.datetime]


def write_batch(folder: Path, name: str, runs: int, duration: float) -> Path:
    """One job swept over `runs` seeds, each run `duration` s of simulated diffusion."""
    shutil.copytree(ROOT / "examples" / "inputs", folder / "inputs", dirs_exist_ok=True)
    job = {
        "name": "short",
        "prompt": "a rain-soaked street at night",
        "inputs": {"color": "inputs/street-color.mp4"},
        "controls": {"edge": 0.5},
        "env": {"COSMOS_SIM_DURATION": f"{duration:g}"},
        "seed": list(range(runs)) if runs > 1 else 1,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "jobs": [job]}, sort_keys=False))
    return path


def slurm_inventory(paths: LabPaths, lab_inventory: Path, folder: Path) -> Path:
    """The lab's lab-1 as a Slurm login host (as tests/integration/test_slurm_backend.py)."""
    hosts = yaml.safe_load(lab_inventory.read_text())["all"]["children"]["cosmos_lab"]["hosts"]
    login = dict(hosts[LOGIN])
    login.update(
        cosmos_backend="slurm",
        cosmos_gpu_count=2,
        cosmos_slurm_max_parallel=4,
        cosmos_slurm_env=slurm.client_env(paths),
        cosmos_slurm_jobcomp_file=str(slurm.jobcomp_file(paths)),
    )
    path = folder / "slurm-inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {LOGIN: login}}}))
    return path


def slots_of(inventory: Path) -> int:
    """Runs at once: the login host's max_parallel, else the hosts' GPUs."""
    data = yaml.safe_load(inventory.read_text())["all"]
    hosts = dict(data.get("hosts") or {})
    for group in (data.get("children") or {}).values():
        hosts.update(group.get("hosts") or {})
    for values in hosts.values():
        if values.get("cosmos_backend") == "slurm":
            return int(values.get("cosmos_slurm_max_parallel", 1))
    return sum(int(v.get("cosmos_gpu_count", 1)) for v in hosts.values())


def container_span(record: RunRecord, saved_exit: dict[str, Any] | None) -> Span | None:
    """When the run's container started and finished: the record's engine times, else the
    times the Slurm task script saved beside the log (logs/container-exit.json)."""
    saved = saved_exit or {}
    begin = parse_time(record.container_started_at) or parse_time(saved.get("started_at"))
    end = parse_time(record.container_finished_at) or parse_time(saved.get("finished_at"))
    return (begin, end) if begin and end else None


def submitted_at(record: RunRecord) -> dt.datetime | None:
    """When the run was handed to Slurm (its `submitted to Slurm as` note); None on SSH."""
    notes = [parse_time(n.at) for n in record.notes if n.text.startswith(SUBMITTED)]
    return max((at for at in notes if at), default=None)


def ended_at(record: RunRecord) -> dt.datetime | None:
    """When the run got its verdict: its last state change."""
    return parse_time(record.history[-1].at) if record.history else None


def peak_at_once(spans: list[Span]) -> int:
    """The most containers running at the same time (more than the slots: a GPU shared)."""
    events = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def figures(
    records: list[RunRecord], spans: list[Span], slots: int, start: dt.datetime, wall: float
) -> dict[str, Any]:
    """A backend's row: seconds from the command's start, the ideal and the ratio."""

    def since(moment: dt.datetime) -> float:
        return (moment - start).total_seconds()

    begins = [since(b) for b, _ in spans]
    submits = [since(at) for r in records if (at := submitted_at(r))]
    busy = sum((e - b).total_seconds() for b, e in spans)
    makespan = max(since(at) for r in records if (at := ended_at(r)))
    ideal = busy / slots
    return {
        "runs": len(records),
        "succeeded": sum(r.state is RunState.SUCCEEDED for r in records),
        "slots": slots,
        "wall_s": wall,
        "first_start_s": min(begins),
        "submitted_s": max(submits) if submits else max(begins),
        "last_start_s": max(begins),
        "makespan_s": makespan,
        "mean_container_s": busy / len(spans),
        "peak_containers": peak_at_once(spans),
        "slurm_arrays": len({r.slurm_job_id for r in records if r.slurm_job_id}),
        "ideal_s": ideal,
        "makespan_over_ideal": makespan / ideal,
        "overhead_per_run_s": (makespan * slots - busy) / len(records),
    }


def compare(ssh: dict[str, Any], slurm_row: dict[str, Any]) -> dict[str, float]:
    """Slurm / SSH of the figures that compare."""
    keys = ["wall_s", "submitted_s", "makespan_s", "makespan_over_ideal", "overhead_per_run_s"]
    return {key: slurm_row[key] / ssh[key] for key in keys}


def common_ideal(rows: dict[str, dict[str, Any]]) -> float:
    """The ideal of both at the lower mean container time: the same job on the same machine,
    where a busier backend's containers ran slower (more at once on the same CPUs)."""
    return min(row["mean_container_s"] * row["runs"] / row["slots"] for row in rows.values())


def read_records(state: Path) -> tuple[list[RunRecord], list[Span]]:
    """Every run record of a state folder, and the container spans of those that have one."""
    records, spans = [], []
    for path in sorted((state / "runs").glob("*/run.json")):
        record = RunRecord.from_json(json.loads(path.read_text()))
        saved = path.parent / "logs" / EXIT_FILE
        span = container_span(record, json.loads(saved.read_text()) if saved.exists() else None)
        records.append(record)
        if span:
            spans.append(span)
    return records, spans


def run_infer(batch: Path, state: Path, inventory: Path) -> dict[str, Any]:
    """`cosmos infer --json` to its end; its row of figures."""
    start = dt.datetime.now(dt.UTC)
    begin = time.monotonic()
    done = subprocess.run(
        [COSMOS, "infer", "--batch", str(batch), "--state-dir", str(state),
         "--inventory", str(inventory), "--json"],
        capture_output=True, text=True, check=False, timeout=3 * 3600,
    )  # fmt: skip
    wall = time.monotonic() - begin
    records, spans = read_records(state)
    if not records or not spans:
        raise SystemExit(f"no run recorded or none started (exit {done.returncode}):\n"
                         + "\n".join(done.stderr.splitlines()[-30:]))  # fmt: skip
    row = figures(records, spans, slots_of(inventory), start, wall)
    row["exit_code"] = done.returncode
    return row


def print_table(rows: dict[str, dict[str, Any]], ratio: dict[str, float]) -> None:
    print(
        f"{'':6} {'ok':>7} {'wall':>8} {'1st start':>9} {'submitted':>9} {'last start':>10} "
        f"{'makespan':>9} {'ideal':>7} {'ratio':>6} {'overhead/run':>12}"
    )
    for name, row in rows.items():
        print(
            f"{name:6} {row['succeeded']:>3}/{row['runs']:<3} {row['wall_s']:7.1f}s "
            f"{row['first_start_s']:8.1f}s {row['submitted_s']:8.1f}s {row['last_start_s']:9.1f}s "
            f"{row['makespan_s']:8.1f}s {row['ideal_s']:6.1f}s {row['makespan_over_ideal']:6.2f} "
            f"{row['overhead_per_run_s']:11.2f}s"
        )
    ssh, slurm_row = rows["ssh"], rows["slurm"]
    print(
        f"containers: mean ssh {ssh['mean_container_s']:.2f} s, slurm "
        f"{slurm_row['mean_container_s']:.2f} s; at most at once ssh {ssh['peak_containers']}, "
        f"slurm {slurm_row['peak_containers']} ({ssh['slots']} slots); "
        f"slurm arrays {slurm_row['slurm_arrays']}"
    )
    for name, row in rows.items():
        if row["peak_containers"] > row["slots"]:
            print(f"warning: {name} ran more containers at once than its slots (a GPU shared)")
    common = common_ideal(rows)
    print(
        f"common ideal (the lower mean container time): {common:.1f} s; makespan over it: "
        f"ssh {ssh['makespan_s'] / common:.2f}, slurm {slurm_row['makespan_s'] / common:.2f}"
    )
    print(
        f"slurm / ssh: makespan {ratio['makespan_s']:.2f}, submission {ratio['submitted_s']:.2f}, "
        f"makespan/ideal {ratio['makespan_over_ideal']:.2f}, "
        f"overhead per run {ratio['overhead_per_run_s']:.2f}"
    )


def measure(args: argparse.Namespace, paths: LabPaths, inventory: Path, folder: Path) -> dict:
    """The SSH row (the reference) then the Slurm row, each on its own batch and state."""
    inventories = {"ssh": inventory, "slurm": slurm_inventory(paths, inventory, folder)}
    stamp = time.strftime("%H%M%S")
    rows = {}
    for name, path in inventories.items():
        if not args.json:
            print(f"{name}: {args.runs} runs of {args.duration:g} s ...", flush=True)
        batch = write_batch(folder, f"slurm-makespan-{name}-{stamp}", args.runs, args.duration)
        rows[name] = run_infer(batch, folder / f"state-{name}", path)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--duration", type=float, default=1.0, help="COSMOS_SIM_DURATION, s")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the batches and state folders")
    args = parser.parse_args()
    paths = LabPaths.from_env()
    inventory = lab_control.up(paths, hosts=2, gpus=2, slurm=True)
    folder = Path(tempfile.mkdtemp(prefix="slurm-makespan-", dir="/var/tmp"))
    try:
        rows = measure(args, paths, inventory, folder)
    finally:
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    ratio = compare(rows["ssh"], rows["slurm"])
    if args.json:
        report = {"runs": args.runs, "duration_s": args.duration, **rows}
        report.update(common_ideal_s=common_ideal(rows), slurm_over_ssh=ratio)
        print(json.dumps(report, indent=2))
    else:
        print_table(rows, ratio)
    if any(row["succeeded"] != args.runs for row in rows.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
