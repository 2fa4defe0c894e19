"""Batch makespan: the scheduler against a naive loop, on the lab's hosts and GPU slots.

J simulated jobs of a fixed duration run twice in the same session: once through the
scheduler (pipelined across every slot), once as a naive loop (one blocking
stage-run-collect per job). For each it prints the makespan over the ideal
(sum of container run times / slots) and the median idle gap between consecutive containers
on a slot, from the engine's own start and finish times.

    .venv/bin/python -m bench.batch_makespan [--jobs 8] [--duration 20] [--hosts 2] [--gpus 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from cosmos_driver.ansible_adapter import AnsibleAdapter, inventory_hosts
from cosmos_driver.batch import load_batch
from cosmos_driver.batch_runner import BatchRunner
from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import HostDown, PhaseFailed, Placement, PreparedRun, Verdict
from cosmos_driver.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def engine_time(text: str) -> float:
    """Docker's RFC 3339 nanosecond time as epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
    return stamp + float(f"0.{frac[:6] or 0}")


def write_batch(folder: Path, name: str, jobs: int, duration: float) -> Path:
    shutil.copytree(ROOT / "examples" / "inputs", folder / "inputs", dirs_exist_ok=True)
    body = {
        "name": name,
        "defaults": {"env": {"COSMOS_SIM_DURATION": str(duration)}, "controls": {"edge": 0.5}},
        "jobs": [
            {
                "name": f"job-{i:02d}",
                "prompt": f"bench job {i}",
                "inputs": {"color": "inputs/street-color.mp4"},
            }
            for i in range(jobs)
        ],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def figures(records: list[RunRecord], slots: int, makespan: float) -> dict[str, float]:
    spans, by_slot = [], {}
    for record in records:
        assert record.state is RunState.SUCCEEDED, (record.run_id, record.failure)
        begin = engine_time(record.container_started_at or "")
        end = engine_time(record.container_finished_at or "")
        spans.append(end - begin)
        for device in record.gpu_devices or ["0"]:
            by_slot.setdefault((record.host, device), []).append((begin, end))
    gaps = []
    for runs in by_slot.values():
        runs.sort()
        gaps += [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(runs)]
    ideal = sum(spans) / slots
    return {
        "makespan_s": makespan,
        "ideal_s": ideal,
        "makespan_over_ideal": makespan / ideal,
        "median_idle_gap_s": statistics.median(gaps) if gaps else float("nan"),
        "gaps": len(gaps),
    }


def run_scheduler(batch_path: Path, store: RunStore, inventory: Path) -> tuple[list, float]:
    adapter = AnsibleAdapter(inventory, store.root / "tmp")
    counts = {h: int(v.get("cosmos_gpu_count", 1)) for h, v in inventory_hosts(inventory).items()}
    begin = time.monotonic()
    result = BatchRunner(adapter, store, counts).run(load_batch(batch_path))
    return result.records, time.monotonic() - begin


def run_naive(batch_path: Path, store: RunStore, inventory: Path) -> tuple[list, float]:
    adapter = AnsibleAdapter(inventory, store.root / "tmp")
    host = next(iter(inventory_hosts(inventory)))
    lifecycle = JobLifecycle(adapter, store)
    batch = load_batch(batch_path)
    begin = time.monotonic()
    records = []
    for job in batch.jobs:
        run_id = batch.run_id(job)
        store.save_run(RunRecord(run_id, batch.batch_id, job.name))
        records.append(one_run(lifecycle, prepare(store, batch.batch_id, run_id, job), host))
    return records, time.monotonic() - begin


def one_run(lifecycle: JobLifecycle, run: PreparedRun, host: str) -> RunRecord:
    """Launch, wait and collect one run, blocking: a phase that fails is its verdict."""
    problem, exit_ = None, None
    try:
        lifecycle.launch(run, Placement(host))
        exit_ = lifecycle.wait(run, host)
    except PhaseFailed as failed:
        problem = failed.verdict
    except HostDown as down:
        problem = Verdict(FailureReason.HOST_UNREACHABLE, str(down))
    return lifecycle.finish(run, host, problem, exit_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument(
        "--skip-naive", action="store_true", help="scheduler only (quick iterations; no ratio)"
    )
    args = parser.parse_args()
    inventory = lab_control.up(LabPaths.from_env(), args.hosts, args.gpus)
    slots = args.hosts * args.gpus
    stamp = time.strftime("%H%M%S")
    with tempfile.TemporaryDirectory(prefix="bench-makespan-") as work:
        folder = Path(work)
        print(f"{args.jobs} jobs of {args.duration:g} s on {args.hosts} hosts x {args.gpus} slots")
        rows = {}
        modes = [("scheduler", run_scheduler), ("naive loop", run_naive)]
        for mode, runner in modes[: 1 if args.skip_naive else 2]:
            batch = write_batch(
                folder, f"bench-{mode.split()[0]}-{stamp}", args.jobs, args.duration
            )
            records, makespan = runner(batch, RunStore(folder / mode.split()[0]), inventory)
            rows[mode] = figures(records, slots, makespan)
    print(f"{'':12} {'makespan':>9} {'ideal':>7} {'ratio':>6} {'median gap':>11}")
    for mode, row in rows.items():
        print(
            f"{mode:12} {row['makespan_s']:8.1f}s {row['ideal_s']:6.1f}s "
            f"{row['makespan_over_ideal']:6.2f} {row['median_idle_gap_s']:10.2f}s"
        )
    if "naive loop" in rows:
        speedup = rows["naive loop"]["makespan_s"] / rows["scheduler"]["makespan_s"]
        print(f"scheduler makespan is {speedup:.2f}x faster than the naive loop")


if __name__ == "__main__":
    main()
