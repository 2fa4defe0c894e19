"""`cosmos report`: one HTML file that needs no server, and its --json twin."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cosmos_driver.dashboard.report import write_report
from tests.fakes.cli import cosmos
from tests.fakes.state_dirs import FakeBatch, sweep_batch


@pytest.fixture
def sweep(tmp_path: Path) -> FakeBatch:
    return sweep_batch(tmp_path, guidance=[3, 7], seeds=[1, 2])


def test_the_report_is_self_contained(sweep, tmp_path):
    target = tmp_path / "report.html"
    written = write_report(sweep.store, sweep.batch, target)
    html = target.read_text()
    assert written["bytes"] == len(html.encode())
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(references) == 2 * 4  # a thumbnail per run in the gallery and in the sweep grid
    assert all(ref.startswith("data:image/jpeg;base64,") for ref in references)
    assert "<script" not in html and "/static/" not in html


def test_the_report_shows_every_run_and_the_sweep(sweep, tmp_path):
    html_path = tmp_path / "r.html"
    write_report(sweep.store, sweep.batch, html_path)
    html = html_path.read_text()
    assert html.count('class="cell" data-cell-run=') == 4
    for record in sweep.records:
        assert f'<details id="{record.run_id}">' in html


def test_report_task_writes_the_file_and_json(sweep, tmp_path):
    target = tmp_path / "out.html"
    state = str(sweep.store.root)
    batch = sweep.batch.batch_id[:6]
    result = cosmos("report", "--batch", batch, "-o", str(target), "--json", "--state-dir", state)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["report"] == str(target) and target.is_file()
    assert [r["state"] for r in data["runs"]] == ["succeeded"] * 4


def test_report_task_names_an_unknown_batch(sweep, tmp_path):
    result = cosmos("report", "--batch", "nope", "--state-dir", str(sweep.store.root))
    assert result.code != 0
    assert "no single batch matches 'nope'" in result.stderr
