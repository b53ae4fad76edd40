"""A killed ingest's data file that no commit references (and the commit file it staged but
never published): reported by verify, removable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from shipml._hashing import sha256_frame
from shipml.data import RawSource, SnapshotStore


def _raw(frame: pd.DataFrame) -> RawSource:
    return RawSource(frame=frame, uri="memory.csv", format="csv", source_hash=sha256_frame(frame))


def _leave_orphan(table: Path) -> str:
    """The state a crash between the data-file write and the Delta commit leaves: a complete
    Parquet file, named as Delta names them, that no commit references."""
    name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    shutil.copy(next(table.glob("part-*.parquet")), table / name)
    return name


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_an_unreferenced_data_file_is_reported_and_removed(
    tmp_path: Path, loans: pd.DataFrame
) -> None:
    store = SnapshotStore(str(tmp_path / "store"))
    store.ingest("credit", _raw(loans))
    store.ingest("credit", _raw(loans.head(3)))  # v0's file is no longer in v1 but still v0's
    table = Path(store.root) / "credit"
    orphan = _leave_orphan(table)
    _age(table / orphan, 7200)

    found = store.verify("credit")
    older = store.verify("credit", 0)
    removed = store.remove_orphans("credit", min_age=3600)

    assert not found.ok and found.orphans == [orphan] and not older.ok
    assert found.problems == [
        f"file {orphan} of table credit belongs to no snapshot (left by an ingest that "
        f"stopped before its commit); remove it with `shipml snapshots clean`"
    ]
    assert removed == ([orphan], [])
    assert not (table / orphan).exists()
    assert store.verify("credit").ok and store.verify("credit", 0).ok
    assert len(store.load("credit", 0)) == 4  # every snapshot's own files were kept


def test_a_recent_orphan_is_kept_as_it_may_be_an_ingest_in_flight(
    tmp_path: Path, loans: pd.DataFrame
) -> None:
    store = SnapshotStore(str(tmp_path / "store"))
    store.ingest("credit", _raw(loans))
    table = Path(store.root) / "credit"
    orphan = _leave_orphan(table)

    kept = store.remove_orphans("credit", min_age=3600)
    forced = store.remove_orphans("credit", min_age=0)

    assert kept == ([], [orphan]) and forced == ([orphan], [])
    assert store.verify("credit").ok


# -- the CLI, and a real crash ------------------------------------------------------------


def _shipml(
    project: Path, *args: str, wrap: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", "shipml", *args, "--project", str(project)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        env={**os.environ, "SHIPML_ACTOR": "orphan-tests"},
    )


@pytest.fixture
def project(tmp_path: Path, loans: pd.DataFrame) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "shipml.yaml").write_text(
        "project: demo\ndata:\n  source: loans.csv\ntraining:\n  target: defaulted\n"
    )
    loans.to_csv(folder / "loans.csv", index=False)
    return folder


def _table(project: Path) -> Path:
    (table,) = {p.parent for p in project.rglob("_delta_log")}
    return table


@pytest.mark.slow
def test_verify_exits_1_naming_the_orphan_and_clean_removes_it_with_an_audit_event(
    project: Path,
) -> None:
    assert _shipml(project, "ingest").returncode == 0
    table = _table(project)
    orphan = _leave_orphan(table)

    verify = _shipml(project, "snapshots", "verify", "--json")
    recent = _shipml(project, "snapshots", "clean", "--json")
    clean = _shipml(project, "snapshots", "clean", "--min-age", "0", "--json")
    after = _shipml(project, "snapshots", "verify")
    audit = _shipml(project, "audit", "log", "--json")

    assert verify.returncode == 1, verify.stderr
    assert json.loads(verify.stdout)["orphans"] == [orphan]
    assert json.loads(recent.stdout) == {"removed": [], "kept": [orphan]}
    assert clean.returncode == 0 and json.loads(clean.stdout) == {"removed": [orphan], "kept": []}
    assert after.returncode == 0 and "snapshot intact" in after.stdout
    (event,) = [e for e in json.loads(audit.stdout) if e["action"] == "snapshot.orphans_removed"]
    assert event["subject"] == "demo" and event["details"]["files"] == [orphan]
    assert event["actor"] == "orphan-tests"


def _strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _strace_works(), reason="needs strace and ptrace (to kill at a syscall)")
def test_an_ingest_killed_between_data_file_and_commit_leaves_an_orphan_clean_removes(
    project: Path, loans: pd.DataFrame
) -> None:
    assert _shipml(project, "ingest").returncode == 0
    table = _table(project)
    before = {p.name for p in table.glob("*.parquet")}
    pd.concat([loans, loans]).to_csv(project / "loans.csv", index=False)
    # Deterministic crash point: when the process makes the syscall that would publish
    # commit 1 (delta-rs links its temp file to this name), strace skips it and sends
    # SIGKILL. The data file is complete by then: delta-rs renames it into place first.
    commit = table / "_delta_log" / f"{1:020d}.json"
    killer = ["strace", "-f", "-qq", "-o", os.devnull, "-P", str(commit)]
    killer += ["-e", "trace=link,linkat,rename,renameat,renameat2"]
    killer += ["-e", "inject=link,linkat,rename,renameat,renameat2:error=EIO:signal=KILL"]

    killed = _shipml(project, "ingest", wrap=killer)
    committed = commit.exists()
    orphans = sorted({p.name for p in table.glob("*.parquet")} - before)
    staged = [f"_delta_log/{p.name}" for p in (table / "_delta_log").glob("*.json#*")]
    verify = _shipml(project, "snapshots", "verify")
    listed = _shipml(project, "snapshots", "list", "--json")
    clean = _shipml(project, "snapshots", "clean", "--min-age", "0", "--json")
    after = _shipml(project, "snapshots", "verify")
    again = _shipml(project, "ingest", "--json")

    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert not committed and len(orphans) == 1 and len(staged) == 1
    assert verify.returncode == 1 and orphans[0] in verify.stdout and staged[0] in verify.stdout
    assert [s["version"] for s in json.loads(listed.stdout)] == [0]
    assert json.loads(clean.stdout)["removed"] == sorted([*orphans, *staged])
    assert not list(table.glob("_delta_log/*#*"))
    assert after.returncode == 0, after.stdout
    assert again.returncode == 0 and json.loads(again.stdout)["steps"][0]["outputs"]["version"] == 1
