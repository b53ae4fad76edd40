"""The validation report reads the same offline: one file, nothing loaded from anywhere else,
every expectation listed with its verdict, failures first with the offending values."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests._services.tools import require_tool
from tests.unit.validate.test_validate_run import run

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?!#|data:)[^"'\s>]+|url\(|<script|@import""")


def test_the_report_is_self_contained_and_lists_failures_first(
    frame: pd.DataFrame, suite_path: Path, tmp_path: Path
) -> None:
    frame.loc[frame.index[:4], "grade"] = "Z"
    report = run(frame, suite_path, tmp_path)
    page = report.docs_path.read_text()
    assert not EXTERNAL.findall(page), EXTERNAL.findall(page)  # no CDN, no script, no link
    assert "FAILED" in page and f"{report.evaluated} expectations, 1 failed" in page
    rows = re.findall(r"<tr class=(\w+)>", page)
    assert rows[0] == "bad" and rows.count("bad") == 1 and len(rows) == report.evaluated
    assert "e.g. &#x27;Z&#x27;" in page  # the offending value, escaped


def test_a_clean_run_passes_on_the_page(
    frame: pd.DataFrame, suite_path: Path, tmp_path: Path
) -> None:
    page = run(frame, suite_path, tmp_path).docs_path.read_text()
    assert "PASSED" in page and "0 failed" in page and "<tr class=bad>" not in page


@pytest.mark.slow
def test_the_report_renders_in_a_browser_with_no_network(
    frame: pd.DataFrame, suite_path: Path, tmp_path: Path
) -> None:
    """Headless Chromium in a network namespace of its own (no interface but loopback, which
    is down): the page shows its verdict and every row; Data Docs, by contrast, need CDNs."""
    chromium = require_tool("chromium", "apt-get install -y chromium")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("a private network namespace needs unshare and root")
    frame.loc[frame.index[:4], "grade"] = "Z"
    report = run(frame, suite_path, tmp_path)
    shot = tmp_path / "report.png"
    browse = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"]
    url = report.docs_path.as_uri()
    dom = subprocess.run(
        ["unshare", "--net", *browse, "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    subprocess.run(
        ["unshare", "--net", *browse, f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert "FAILED" in dom and dom.count('<tr class="bad">') == 1, dom[:2000]
    assert dom.count("<tr class=") == report.evaluated
    assert shot.stat().st_size > 20_000  # a page with a table, not a blank one
