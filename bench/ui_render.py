"""Dashboard render time: the batches view and the page and JSON of a batch of N runs.

A state directory with one batch of N runs (a sweep, so the grid is drawn too) and a few
small batches is written once; each view is then fetched through the real app (Starlette's
in-process client: routing, the Guard middleware, templates) several times. The reference,
measured in the same run, is the least any view must do: read and parse every run.json of
the big batch with `json.load`. "cold" is a fresh dashboard (nothing cached), "polled" the
same page again, as the live view fetches it every second (only changed records parsed).

    .venv/bin/python -m bench.ui_render [--runs 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient

from cosmos_driver.dashboard.access import Access, allowed_hosts
from cosmos_driver.dashboard.actions import Actions
from cosmos_driver.dashboard.app import Dashboard, create_app
from cosmos_driver.ids import batch_id as make_batch_id
from cosmos_driver.ids import run_id as make_run_id
from cosmos_driver.records import BatchRecord, Progress, RunRecord, RunState
from cosmos_driver.store import RunStore

SMALL_BATCHES = 20


def fill(store: RunStore, name: str, runs: int) -> BatchRecord:
    """A batch of `runs` runs of a guidance × seed sweep, a mix of ended and running."""
    batch_id = make_batch_id(name)
    ids = []
    for index in range(runs):
        guidance, seed = index % 10, index // 10
        job = f"street.guidance-{guidance}.seed-{seed}"
        record = RunRecord(make_run_id(batch_id, job), batch_id, job, host=f"gpu-{index % 4}")
        for state in (RunState.PENDING, RunState.STAGING, RunState.RUNNING):
            record.move_to(state)
        if index % 3:
            record.move_to(RunState.SUCCEEDED)
            record.thumbnails = ["thumbnails/output-output.middle.jpg"]
            record.outputs = ["outputs/output.mp4"]
        record.progress = Progress(min(35, index % 36), 35)
        record.sweep = {"guidance": guidance, "seed": seed}
        record.parameters = {"guidance": guidance, "seed": seed, "gpus": 1}
        store.save_run(record)
        ids.append(record.run_id)
    batch = BatchRecord(batch_id, name, f"/data/{name}.yaml", ids)
    store.save_batch(batch)
    return batch


def timed(call: Callable[[], object], repeat: int) -> float:
    """Median seconds of `call` over `repeat` runs, after one warm-up."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def read_all(store: RunStore, batch: BatchRecord) -> None:
    for run_id in batch.run_ids:
        with (store.run_dir(run_id) / "run.json").open() as handle:
            json.load(handle)


def fresh_client(store: RunStore) -> TestClient:
    """A new dashboard: nothing cached, as on the first load of a page."""
    guard = Access(None, allowed_hosts("127.0.0.1", 8765))
    app = create_app(Dashboard(store, Actions(store, None), guard))
    return TestClient(app, base_url="http://127.0.0.1:8765")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as work:
        store = RunStore(Path(work) / "state")
        big = fill(store, "big-sweep", args.runs)
        for index in range(SMALL_BATCHES):
            fill(store, f"small-{index}", 5)
        client = fresh_client(store)
        views = {
            f"batches view ({SMALL_BATCHES + 1} batches)": "/",
            f"batch page ({args.runs} runs)": f"/batches/{big.batch_id}",
            f"batch JSON ({args.runs} runs)": f"/api/batches/{big.batch_id}",
        }
        reference = timed(lambda: read_all(store, big), args.repeat)
        print(f"reference: json.load of {args.runs} run.json files: {reference * 1000:.1f} ms")
        print(f"{'':32} {'cold':>9} {'polled':>9}  (cold / reference)")
        for label, url in views.items():
            assert client.get(url).status_code == 200, url
            cold = timed(lambda url=url: fresh_client(store).get(url), args.repeat)
            warm = timed(lambda url=url: client.get(url), args.repeat)
            ratio = cold / reference
            print(f"{label:32} {cold * 1000:6.1f} ms {warm * 1000:6.1f} ms  ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
