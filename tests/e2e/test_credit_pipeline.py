"""The flagship example, end to end, through the real CLI."""

from __future__ import annotations

import json
import shlex
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from shipml.pipeline import ORDER
from tests.e2e.conftest import Result, copy_project, shipml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Result, Result]]:
    """The credit example run twice on unchanged data, as `make demo` runs it: the first run
    ends with version 1 served locally; the server is stopped when the module is done."""
    project = copy_project("credit", tmp_path_factory.mktemp("e2e"))
    try:
        first = shipml(project, "run", "--json", env=SERVING)
        assert first.code == 0, first.stdout + first.stderr
        second = shipml(project, "run", "--json", env=SERVING)
        assert second.code == 0, second.stdout + second.stderr
        yield project, first, second
    finally:
        assert shipml(project, "down").code == 0
        assert not (project / ".shipml" / "deploy" / "server.json").exists()


SERVING = {"SHIPML_DEPLOY__IN_RUN": "first"}


def steps(result: Result) -> dict[str, dict]:
    return {s["stage"]: s for s in result.json["steps"]}


def test_first_run_registers_a_candidate(credit: tuple[Path, Result, Result]) -> None:
    project, first, _ = credit
    s = steps(first)
    assert list(s) == ORDER
    assert all(step["status"] == "done" for step in s.values())
    assert s["ingest"]["outputs"]["created"] is True
    assert s["register"]["outputs"] == {
        **s["register"]["outputs"],
        "model": "credit",
        "version": 1,
        "alias": "candidate",
    }
    assert Path(first.json["reports"]["evaluation"]).exists()
    assert (project / ".shipml" / "artifacts").is_dir()  # not ./mlruns of the caller
    assert not Path("mlruns").exists()
    assert (Path(first.json["reports"]["validation"])).exists()
    versions = shipml(project, "registry", "versions", "--json").json
    assert [v["version"] for v in versions] == [1, 2]
    assert "candidate" in versions[1]["aliases"]  # the alias moved to the newest version


def test_unchanged_data_reuses_the_snapshot(credit: tuple[Path, Result, Result]) -> None:
    project, first, second = credit
    a, b = steps(first)["ingest"]["outputs"], steps(second)["ingest"]["outputs"]
    assert b["created"] is False
    assert a["snapshot"] == b["snapshot"] and a["content_hash"] == b["content_hash"]
    assert len(shipml(project, "snapshots", "list", "--json").json) == 1
    lineage1 = shipml(project, "lineage", "credit:1", "--json").json
    lineage2 = shipml(project, "lineage", "credit:2", "--json").json
    assert [link["stage"] for link in lineage2] == [
        "source",
        "snapshot",
        "validation",
        "training",
        "model",
    ]
    assert lineage1[1]["hash"] == lineage2[1]["hash"] == a["content_hash"]
    assert lineage1[0]["hash"] == a["source_hash"]
    assert lineage1[3]["label"] != lineage2[3]["label"]  # two MLflow runs, one snapshot


def test_summary_for_people(credit: tuple[Path, Result, Result]) -> None:
    project, _, _ = credit
    out = shipml(project, "lineage", "credit:1")
    assert out.code == 0 and "snapshot" in out.stdout and "credit@0" in out.stdout


def test_the_first_run_serves_the_model_and_its_curl_example_works(
    credit: tuple[Path, Result, Result],
) -> None:
    project, first, second = credit
    deployed = steps(first)["deploy"]["outputs"]
    assert deployed["version"] == 1 and deployed["url"].startswith("http://127.0.0.1:")
    # the printed command, sent as curl would send it
    words = shlex.split(deployed["curl"])
    url, body = words[2], words[words.index("-d") + 1]
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        [probability] = json.loads(response.read())["predictions"]
    assert 0.0 <= probability <= 1.0
    # the second run registered version 2, which waits for `shipml deploy`
    again = steps(second)["deploy"]["outputs"]
    assert (again["version"], again["waiting"], again["url"]) == (1, 2, deployed["url"])
    status = shipml(project, "status", "--json").json
    assert status["target"]["ready"] is True
    assert status["aliases"] == {"champion": 1, "candidate": 2}
    assert [(v["name"], v["version"]) for v in status["target"]["variants"]] == [("stable", 1)]


def test_promote_moves_traffic_and_alias_and_records_both(
    credit: tuple[Path, Result, Result],
) -> None:
    project, _, _ = credit
    assert shipml(project, "promote", "credit", "2", "--reason", "retrained").code == 0
    status = shipml(project, "status", "--json").json
    assert [(v["name"], v["version"]) for v in status["target"]["variants"]] == [("stable", 2)]
    assert status["serving_release"]["kind"] == "promote"
    history = shipml(project, "registry", "history", "credit", "--json").json
    champion = [h for h in history if h["alias"] == "champion"]
    assert [h["version"] for h in champion] == [1, 2]
    assert champion[1]["reason"].startswith("retrained")
    assert champion[0]["until"] == champion[1]["since"]
    assert champion[1]["until"] is None and champion[1]["actor"] == "e2e-tests"
    assert shipml(project, "audit", "verify", "--json").json["ok"] is True


def test_tampering_is_detected(credit: tuple[Path, Result, Result], tmp_path: Path) -> None:
    project, _, _ = credit
    db = project / ".shipml" / "state.db"
    backup = tmp_path / "state.db"
    backup.write_bytes(db.read_bytes())
    try:
        with sqlite3.connect(db) as conn:
            conn.execute("update audit_events set actor = 'mallory' where seq = 2")
        out = shipml(project, "audit", "verify", "--json")
        assert out.code == 1
        assert any("entry 2" in p for p in out.json["problems"])
        db.write_bytes(backup.read_bytes())
        with sqlite3.connect(db) as conn:
            conn.execute("delete from audit_events where seq = 1")
        assert shipml(project, "audit", "verify").code == 1
    finally:
        db.write_bytes(backup.read_bytes())
    assert shipml(project, "audit", "verify").code == 0


def test_edited_snapshot_file_is_named(credit: tuple[Path, Result, Result]) -> None:
    project, _, _ = credit
    assert shipml(project, "snapshots", "verify").code == 0
    [part] = list((project / ".shipml" / "data" / "credit").glob("*.parquet"))
    original = part.read_bytes()
    try:
        frame = pd.read_parquet(part)
        frame.loc[0, "funded_amnt"] = frame.loc[0, "funded_amnt"] + 1
        frame.to_parquet(part)
        out = shipml(project, "snapshots", "verify", "--json")
        assert out.code == 1
        assert any(part.name in p for p in out.json["problems"])
    finally:
        part.write_bytes(original)


def test_summary_table_on_a_terminal(tmp_path: Path) -> None:
    """Without --json a person gets progress per stage and the summary with every gate."""
    project = copy_project("credit", tmp_path)
    out = shipml(project, "run")
    assert out.code == 0, out.stderr
    for stage in ORDER:
        assert stage in out.stderr  # progress lines
    assert "credit version 1" in out.stdout and "alias 'candidate'" in out.stdout
    assert "roc_auc=" in out.stdout and "fairness" in out.stdout
    assert "evaluation report:" in out.stdout
