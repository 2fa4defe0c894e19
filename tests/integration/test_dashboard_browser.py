"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) while
a real batch runs on the lab: the batch view follows the runs without a reload, kill from a
run's page ends the run `cancelled`, the output video plays, the sweep grid has a cell per
run, and the report opens from disk with every thumbnail.

With COSMOS_UI_SCREENSHOTS=<folder> it also saves a screenshot of each view there (that is
how docs/images/ui-*.png are made)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.fakes.batch_files import job, write_batch
from tests.fakes.cli import COSMOS, ROOT, cosmos, free_port, start_infer

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (scripts/bootstrap --test installs it)
SWEEP = {"guidance": [3, 7], "seed": [1, 2]}
LONG_JOB = "long"
WAIT_MS = 180_000
LOADED = "i => i.complete && i.naturalWidth > 0"  # an <img> whose picture arrived


@pytest.fixture(scope="module")
def browser() -> Browser:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run ./scripts/bootstrap --test"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        launched.close()


def start_dashboard(state: Path, inventory: Path, port: int) -> subprocess.Popen:
    """`cosmos ui` as a user starts it; returns once it answers."""
    server = subprocess.Popen(
        [COSMOS, "ui", "--state-dir", str(state), "--inventory", str(inventory),
         "--port", str(port), "--grace", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.3)
    server.kill()
    raise AssertionError("cosmos ui did not answer within 30 s")


def wait_for_record(state: Path, run_id: str, wanted: set[str], seconds: float = 180) -> dict:
    path = state / "runs" / run_id / "run.json"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            record = json.loads(path.read_text())
            if record["state"] in wanted:
                return record
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not reach {wanted} in {seconds} s")


def batch_record(state: Path, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = sorted((state / "batches").glob("*.json")) if (state / "batches").is_dir() else []
        if found:
            return json.loads(found[0].read_text())
        time.sleep(0.3)
    raise AssertionError("infer wrote no batch record")


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("COSMOS_UI_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"ui-{name}.png"), full_page=True)


def run_id_of(batch: dict, state: Path, job_name: str) -> str:
    for run_id in batch["run_ids"]:
        path = state / "runs" / run_id / "run.json"
        if path.exists() and json.loads(path.read_text())["job_name"] == job_name:
            return run_id
    raise AssertionError(f"no run of job {job_name}")


def test_the_dashboard_follows_kills_and_plays_a_lab_batch(lab, tmp_path, browser):
    batch_file = write_batch(
        tmp_path,
        "ui-sweep",
        [
            job(LONG_JOB, env={"COSMOS_SIM_DURATION": "240"}),
            job("street", env={"COSMOS_SIM_DURATION": "4"}, **SWEEP),
        ],
    )
    state, port = tmp_path / "state", free_port()
    infer = start_infer(batch_file, state, lab.inventory)
    server = start_dashboard(state, lab.inventory, port)
    base = f"http://127.0.0.1:{port}"
    try:
        batch = batch_record(state)
        long_run = wait_for_record(state, batch["run_ids"][0], {"pending", "staging", "running"})
        page = browser.new_page()
        page.goto(f"{base}/batches/{batch['batch_id']}")
        page.evaluate("window.notReloaded = true")
        row = f'#runs tr[data-run="{long_run["run_id"]}"]'
        page.wait_for_function(
            f"document.querySelector('{row}').dataset.state === 'running'", timeout=WAIT_MS
        )
        assert page.evaluate("window.notReloaded") is True  # it changed in place
        assert "running" in page.inner_text(f"{row} .state-cell")

        run_page = browser.new_page()
        run_page.on("dialog", lambda dialog: dialog.accept())
        run_page.goto(f"{base}/runs/{long_run['run_id']}")
        run_page.wait_for_function(  # the log is fetched from the host while the run runs
            "document.getElementById('log').textContent.includes('Diffusion sampling')",
            timeout=60_000,
        )
        screenshot(run_page, "run-live")
        run_page.click("button[data-action$='/kill']")
        cancelled = wait_for_record(state, long_run["run_id"], {"cancelled", "failed", "succeeded"})
        assert cancelled["state"] == "cancelled"
        page.wait_for_function(
            f"document.querySelector('{row}').dataset.state === 'cancelled'", timeout=30_000
        )

        infer.communicate(timeout=300)
        assert infer.returncode != 0  # one run was cancelled
        sweep_ids = [i for i in batch["run_ids"] if i != long_run["run_id"]]
        assert len(sweep_ids) == 4
        for run_id in sweep_ids:
            assert wait_for_record(state, run_id, {"succeeded"}, seconds=5)["state"] == "succeeded"

        page.reload()
        assert page.locator(".grid .cell").count() == 4
        page.wait_for_function(
            f"[...document.querySelectorAll('.grid img')].every({LOADED})",
            timeout=30_000,
        )
        screenshot(page, "batch")

        played = browser.new_page()
        played.goto(f"{base}/runs/{sweep_ids[0]}")
        played.evaluate("document.getElementById('output').play()")
        played.wait_for_function(
            "document.getElementById('output').currentTime > 0.3", timeout=30_000
        )
        assert played.evaluate("document.getElementById('output').error") is None
        played.select_option("#review select[name=rating]", "5")
        played.fill("#review input[name=comment]", "crisp edges")
        played.click("#review button[type=submit]")
        played.wait_for_url(f"{base}/runs/{sweep_ids[0]}")
        rated = json.loads((state / "runs" / sweep_ids[0] / "run.json").read_text())
        assert (rated["rating"], rated["comment"]) == (5, "crisp edges")
        screenshot(played, "run")

        page.reload()
        page.select_option("#filter-rating", "4")
        page.wait_for_function(
            "[...document.querySelectorAll('#runs tbody tr')].filter(r => !r.hidden).length === 1"
        )
        assert page.locator(f'#runs tr[data-run="{sweep_ids[0]}"]').is_visible()
        page.select_option("#filter-rating", "")

        inputs = browser.new_page()
        inputs.goto(f"{base}/batches/{batch['batch_id']}/inputs")
        assert "street-color.mp4" in inputs.inner_text("main")
        assert "320×176" in inputs.inner_text("main")
        screenshot(inputs, "inputs")

        batches = browser.new_page()
        batches.goto(f"{base}/")
        assert batch["batch_id"] in batches.inner_text("#batches")
        screenshot(batches, "batches")

        report = tmp_path / "report.html"
        written = cosmos("report", "--batch", batch["batch_id"], "-o", str(report),
                         "--state-dir", str(state))  # fmt: skip
        assert written.code == 0, written.stderr
        server.terminate()  # the report needs no server
        offline = browser.new_page()
        offline.goto(report.as_uri())
        assert offline.locator(".grid .cell").count() == 4
        offline.wait_for_function(
            "[...document.querySelectorAll('img[src]')].length === 8 && "
            f"[...document.querySelectorAll('img[src]')].every({LOADED})",
            timeout=10_000,
        )
    finally:
        for process in (infer, server):
            if process.poll() is None:
                process.kill()
