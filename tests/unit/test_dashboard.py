"""The dashboard's server without a browser: its views read the records as they change, it
serves only the files records name, and its token, Host and CSRF checks hold. Each attack
test also runs against a server with the check taken out, to prove it would see it pass."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cosmos_driver.dashboard import access
from cosmos_driver.dashboard.access import Access, allowed_hosts
from cosmos_driver.dashboard.actions import ActionRefused, Actions
from cosmos_driver.dashboard.app import Dashboard, create_app
from cosmos_driver.model import Job, job_parameters
from tests.fakes.state_dirs import FakeBatch, failed, running, sweep_batch

BASE = "http://127.0.0.1:8765"
SECRET_TEXT = "the contents of a file outside every run folder"


@pytest.fixture
def sweep(tmp_path: Path) -> FakeBatch:
    return sweep_batch(tmp_path, guidance=[3, 7], seeds=[1, 2, 3])


def client_for(fake: FakeBatch, token: str | None = None, host: str = "127.0.0.1") -> TestClient:
    guard = Access(token, allowed_hosts(host, 8765))
    dashboard = Dashboard(fake.store, Actions(fake.store, None), guard)
    return TestClient(create_app(dashboard), base_url=BASE)


def test_batches_view_lists_the_batch_with_its_counts_and_makespan(sweep):
    page = client_for(sweep).get("/")
    assert page.status_code == 200
    assert sweep.batch.batch_id in page.text
    assert "6 succeeded" in page.text
    assert "1 min 40 s" in page.text  # every run started at 10:00:00 and ended at 10:01:40


def rows_of(client: TestClient, fake: FakeBatch) -> dict[str, dict]:
    return {
        r["run_id"]: r for r in client.get(f"/api/batches/{fake.batch.batch_id}").json()["runs"]
    }


def test_batch_json_follows_a_record_as_it_changes(sweep):
    client = client_for(sweep)
    first = sweep.records[0]
    running(first, step=21)
    sweep.store.save_run(first)
    rows = rows_of(client, sweep)
    assert len(rows) == 6
    assert (rows[first.run_id]["state"], rows[first.run_id]["step"]) == ("running", 21)
    assert rows[first.run_id]["remaining_s"] is not None
    failed(first)
    sweep.store.save_run(first)
    rows = rows_of(client, sweep)
    assert rows[first.run_id]["state"] == "failed"
    assert rows[first.run_id]["reason"] == "container_exit"


def test_batch_page_has_a_sweep_grid_with_one_cell_per_run(sweep):
    page = client_for(sweep).get(f"/batches/{sweep.batch.batch_id}").text
    assert "Sweep street: guidance down, seed across" in page
    cells = page.count('class="cell" data-cell-run=')
    assert cells == len(sweep.records) == 6
    assert page.count("<figure data-run=") == 6


def test_run_page_shows_its_video_prompt_parameters_and_log(sweep):
    record = sweep.records[0]
    page = client_for(sweep).get(f"/runs/{record.run_id}").text
    assert f'src="/runs/{record.run_id}/files/outputs/output.mp4"' in page
    assert f'src="/runs/{record.run_id}/inputs/color"' in page
    assert "a street at night" in page
    assert "step 35/35" in page
    assert "<th>guidance</th><td>3</td>" in page


def test_the_output_video_is_served_with_range_requests(sweep):
    record = sweep.records[0]
    client = client_for(sweep)
    url = f"/runs/{record.run_id}/files/outputs/output.mp4"
    whole = client.get(url)
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert part.status_code == 206
    assert part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"


def test_inputs_view_shows_real_metadata_and_the_multimodal_verdict(sweep):
    page = client_for(sweep).get(f"/batches/{sweep.batch.batch_id}/inputs").text
    assert "64×48" in page and "<td>12</td>" in page  # make_mp4 wrote 12 frames of 64×48
    assert "resizes it to" in page  # the multimodal check's warning, said by name
    assert page.count('<section class="job-inputs">') == 1  # a sweep's jobs share their inputs
    assert "the same inputs as 5 more job(s)" in page


def test_review_keeps_the_rating_and_comment_in_the_record(sweep):
    client = client_for(sweep)
    page = client.get(f"/runs/{sweep.records[1].run_id}")
    csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    answer = client.post(
        f"/runs/{sweep.records[1].run_id}/review",
        data={"rating": "4", "comment": "sharp edges", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    record = sweep.store.load_run(sweep.records[1].run_id)
    assert (record.rating, record.comment) == (4, "sharp edges")


def test_review_refuses_a_rating_out_of_range(sweep):
    client = client_for(sweep)
    csrf = client.app.user_middleware[0].kwargs["guard"].csrf
    answer = client.post(
        f"/runs/{sweep.records[1].run_id}/review",
        data={"rating": "9", "comment": "", "csrf_token": csrf},
    )
    assert answer.status_code == 409
    assert "give 1 to 5" in answer.json()["error"]


# --- files: only what a record names, inside its run folder, never through a symlink -------


def plant_secret(fake: FakeBatch) -> Path:
    secret = fake.store.root.parent / "secret.txt"
    secret.write_text(SECRET_TEXT)
    return secret


def traversal_attempts(fake: FakeBatch, secret: Path) -> list[str]:
    run = fake.records[0].run_id
    up = os.path.relpath(secret, fake.store.run_dir(run))
    return [
        f"/runs/{run}/files/{up}",
        f"/runs/{run}/files/outputs/../../../../secret.txt",
        f"/runs/{run}/files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        f"/runs/{run}/files/..%2f..%2f..%2f..%2fsecret.txt",
        f"/runs/{run}/files/{secret}",
        f"/runs/{run}/files//{secret}",
        f"/runs/..%2f..%2f{run}/files/outputs/output.mp4",
    ]


def naive_run_file(store, record, name):
    """What a server that skips the checks would do: join and serve."""
    path = store.run_dir(record.run_id) / name
    return path if path.is_file() else None


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "checks-skipped"])
def test_paths_outside_the_records_are_never_served(sweep, monkeypatch, checked):
    secret = plant_secret(sweep)
    if not checked:
        monkeypatch.setattr(access, "run_file", naive_run_file)
    client = client_for(sweep)
    answers = [client.get(url) for url in traversal_attempts(sweep, secret)]
    leaked = [a for a in answers if SECRET_TEXT in a.text]
    if checked:
        assert len(answers) == 7
        assert [a.status_code for a in answers] == [404] * 7
        assert leaked == []
    else:
        assert leaked, "the traversal attempts must reach the file when nothing checks"


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "checks-skipped"])
def test_a_symlink_a_record_names_is_not_followed(sweep, monkeypatch, checked):
    secret = plant_secret(sweep)
    record = sweep.records[0]
    link = sweep.store.run_dir(record.run_id) / "logs" / "container.log"
    link.unlink()
    link.symlink_to(secret)
    if not checked:
        monkeypatch.setattr(access, "run_file", naive_run_file)
    answer = client_for(sweep).get(f"/runs/{record.run_id}/files/logs/container.log")
    if checked:
        assert answer.status_code == 404
    else:
        assert SECRET_TEXT in answer.text


def test_an_input_the_record_does_not_name_is_not_served(sweep):
    client = client_for(sweep)
    run = sweep.records[0].run_id
    assert client.get(f"/runs/{run}/inputs/color").status_code == 200
    assert client.get(f"/runs/{run}/inputs/depth").status_code == 404
    assert client.get(f"/runs/{run}/inputs/..%2f..%2fsecret").status_code == 404


# --- token, Host and CSRF ---------------------------------------------------------------------


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "checks-skipped"])
def test_beyond_loopback_every_request_needs_the_token(sweep, checked):
    token = "t0ken-for-this-test"
    client = client_for(sweep, token=token if checked else None, host="0.0.0.0")
    run = sweep.records[0].run_id
    urls = ["/", f"/api/batches/{sweep.batch.batch_id}", f"/runs/{run}/files/outputs/output.mp4"]
    without = [client.get(u).status_code for u in urls]
    wrong = [client.get(u, headers={"Authorization": "Bearer nope"}).status_code for u in urls]
    if not checked:
        assert without == [200, 200, 200], "with no token configured the checks would pass"
        return
    assert without == wrong == [401, 401, 401]
    header = [client.get(u, headers={"Authorization": f"Bearer {token}"}).status_code for u in urls]
    assert header == [200, 200, 200]
    first = client.get(f"/?token={token}")
    assert first.status_code == 200 and access.TOKEN_COOKIE in first.cookies
    assert client.get(urls[1]).status_code == 200  # the cookie carries it from then on


def test_a_foreign_host_header_is_refused_on_loopback(sweep):
    answer = client_for(sweep).get("/", headers={"Host": "evil.example:8765"})
    assert answer.status_code == 421


@pytest.mark.parametrize("url", ["/runs/{run}/kill", "/batches/{batch}/kill", "/runs/{run}/review"])
def test_actions_need_post_and_the_csrf_token(sweep, url):
    client = client_for(sweep)
    target = url.format(run=sweep.records[0].run_id, batch=sweep.batch.batch_id)
    assert client.get(target).status_code == 405
    assert client.post(target).status_code == 403
    assert client.post(target, headers={"X-CSRF-Token": "guess"}).status_code == 403


def test_kill_without_an_inventory_says_how_to_get_one(sweep):
    client = client_for(sweep)
    csrf = client.app.user_middleware[0].kwargs["guard"].csrf
    record = sweep.records[0]
    running(record, step=3)
    sweep.store.save_run(record)
    answer = client.post(f"/runs/{record.run_id}/kill", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 409
    assert "--inventory" in answer.json()["error"]


def test_a_record_never_carries_the_jobs_env(tmp_path):
    job = Job("j", "p", {"color": tmp_path / "c.mp4"}, {"edge": 0.5}, env={"HF_TOKEN": "hf_x"})
    shown = job_parameters(job)
    assert shown["controls"] == {"edge": 0.5}
    assert "hf_x" not in repr(shown) and "env" not in shown


# --- re-run --------------------------------------------------------------------------------


def test_rerun_starts_cosmos_infer_on_the_batch_file(sweep, tmp_path):
    """The real command starts (no hosts here, so infer stops at the missing inventory and
    says so in the log the action names)."""
    Path(sweep.batch.source).write_text("name: sweep\njobs: []\n")
    actions = Actions(sweep.store, None)
    log_path = actions.rerun_failed(sweep.batch, str(tmp_path / "no-such-inventory.yml"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "error" not in log_path.read_text():
        time.sleep(0.2)
    text = log_path.read_text()
    assert "no-such-inventory.yml does not exist" in text, text
    assert log_path.parent == sweep.store.root / "dashboard"


def test_rerun_is_refused_while_an_infer_drives_the_batch(sweep):
    Path(sweep.batch.source).write_text("name: sweep\njobs: []\n")
    with sweep.store.driving(sweep.batch.batch_id), pytest.raises(ActionRefused, match="running"):
        Actions(sweep.store, None).rerun_failed(sweep.batch, None)


def test_rerun_of_a_batch_whose_file_is_gone_says_so(sweep):
    with pytest.raises(ActionRefused, match="is gone"):
        Actions(sweep.store, None).rerun_failed(sweep.batch, None)
