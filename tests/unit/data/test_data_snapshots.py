from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

import shipml.data
from shipml._hashing import sha256_file, sha256_frame
from shipml.data import RawSource, SnapshotStore, read_source
from shipml.errors import SnapshotError, UsageError


def _raw(frame: pd.DataFrame, uri: str = "memory.csv") -> RawSource:
    return RawSource(frame=frame, uri=uri, format="csv", source_hash=sha256_frame(frame))


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(str(tmp_path / "store"))


def test_first_ingest_creates_version_0_with_its_record(
    store: SnapshotStore, loans_csv: Path
) -> None:
    raw = read_source(str(loans_csv))

    result = store.ingest("credit", raw)

    snap = result.snapshot
    assert result.created is True
    assert (snap.dataset, snap.version, snap.ref, snap.rows) == ("credit", 0, "credit@0", 4)
    assert (snap.source, snap.source_hash) == (str(loans_csv), sha256_file(loans_csv))
    assert snap.content_hash == sha256_frame(raw.frame)
    assert snap.schema == [
        ("id", "int64"),
        ("income", "float64"),
        ("purpose", "str"),
        ("defaulted", "bool"),
    ]
    assert snap.created_at.endswith("+00:00")
    table = Path(store.root) / "credit"
    assert snap.files and all(sha256_file(table / p) == h for p, h in snap.files.items())
    assert store.list("credit") == [snap]


def test_identical_content_creates_no_version(
    store: SnapshotStore, loans_csv: Path, loans: pd.DataFrame, tmp_path: Path
) -> None:
    first = store.ingest("credit", read_source(str(loans_csv))).snapshot
    parquet = tmp_path / "same.parquet"
    loans.to_parquet(parquet, index=False)  # same rows, another file and format

    again = store.ingest("credit", read_source(str(loans_csv)))
    same_rows = store.ingest("credit", read_source(str(parquet)))

    assert (again.created, same_rows.created) == (False, False)
    assert again.snapshot == first and same_rows.snapshot == first
    assert DeltaTable(f"{store.root}/credit").version() == 0
    assert [s.version for s in store.list("credit")] == [0]


def test_changed_content_creates_the_next_version(
    store: SnapshotStore, loans: pd.DataFrame
) -> None:
    store.ingest("credit", _raw(loans))
    changed = loans.assign(income=loans["income"] * 2)

    result = store.ingest("credit", _raw(changed))

    assert result.created is True and result.snapshot.version == 1
    assert [s.version for s in store.list("credit")] == [0, 1]
    assert store.get("credit") == result.snapshot
    assert store.get("credit", 0).content_hash == sha256_frame(loans)


def test_time_travel_loads_each_version_exactly(store: SnapshotStore, loans: pd.DataFrame) -> None:
    other = pd.DataFrame({"score": pd.array([1, None, 3], dtype="Int64"), "band": ["a", "b", "a"]})
    other["band"] = other["band"].astype("category")
    store.ingest("credit", _raw(loans))
    store.ingest("credit", _raw(other))  # a different schema entirely

    old, new = store.load("credit", 0), store.load("credit", 1)

    pd.testing.assert_frame_equal(old, loans.astype({"purpose": "str"}), check_exact=True)
    pd.testing.assert_frame_equal(new, other, check_exact=True)
    assert sha256_frame(old) == store.get("credit", 0).content_hash
    assert sha256_frame(new) == store.get("credit", 1).content_hash


def test_values_delta_would_change_are_kept_or_refused(store: SnapshotStore) -> None:
    small = pd.DataFrame({"u": np.array([200, 7], dtype="uint8")})  # Delta has no uint8
    store.ingest("u", _raw(small))
    huge = pd.DataFrame({"u": np.array([2**63 + 5], dtype="uint64")})
    mixed = pd.DataFrame({"m": [1, "x"]}, dtype=object)

    pd.testing.assert_frame_equal(store.load("u", 0), small)
    with pytest.raises(SnapshotError, match="cannot be stored in Delta Lake"):
        store.ingest("huge", _raw(huge))
    with pytest.raises(SnapshotError, match="one type"):
        store.ingest("mixed", _raw(mixed))
    assert store.datasets() == ["u"]


def test_the_table_describes_itself(store: SnapshotStore, loans: pd.DataFrame) -> None:
    snap = store.ingest("credit", _raw(loans, uri="s3://bucket/loans.csv")).snapshot

    table = DeltaTable(f"{store.root}/credit")
    record = json.loads(table.history()[0]["userMetadata"])

    assert record["content_hash"] == snap.content_hash
    assert record["source"] == "s3://bucket/loans.csv"
    assert record["rows"] == 4 and record["schema"][0] == ["id", "int64"]
    assert table.metadata().configuration["delta.enableExpiredLogCleanup"] == "false"
    assert len(table.to_pyarrow_table()) == 4  # plain Delta readers see the rows


def test_unknown_dataset_or_version_names_what_exists(
    store: SnapshotStore, loans: pd.DataFrame
) -> None:
    store.ingest("credit", _raw(loans))
    store.ingest("credit", _raw(loans.head(2)))

    with pytest.raises(SnapshotError) as version:
        store.get("credit", 7)
    with pytest.raises(SnapshotError) as dataset:
        store.load("fraud", 0)
    with pytest.raises(UsageError, match="not valid"):
        store.list("../etc")

    assert str(version.value) == (
        "no snapshot credit@7; versions are 0..1; run `shipml snapshots list`"
    )
    assert "'fraud'" in str(dataset.value) and "datasets: credit" in str(dataset.value)


def test_verify_passes_on_an_untouched_store(store: SnapshotStore, loans: pd.DataFrame) -> None:
    store.ingest("credit", _raw(loans))
    store.ingest("credit", _raw(loans.head(3)))

    assert store.verify("credit").ok and store.verify("credit", 0).problems == []


def test_verify_names_a_modified_file(store: SnapshotStore, loans: pd.DataFrame) -> None:
    store.ingest("credit", _raw(loans))
    snap = store.ingest("credit", _raw(loans.head(3))).snapshot
    name = next(iter(snap.files))
    path = Path(store.root) / "credit" / name
    loans.head(3).assign(income=0.0).to_parquet(path, index=False)  # valid, but different

    result = store.verify("credit")

    assert not result.ok
    assert result.problems[0].startswith(f"file {name} of snapshot credit@1 was modified")
    assert f"!= recorded {snap.files[name]}" in result.problems[0]
    assert store.verify("credit", 0).ok  # the older snapshot has its own files


def test_verify_names_a_missing_file_and_load_refuses(
    store: SnapshotStore, loans: pd.DataFrame
) -> None:
    snap = store.ingest("credit", _raw(loans)).snapshot
    name = next(iter(snap.files))
    (Path(store.root) / "credit" / name).unlink()

    result = store.verify("credit", 0)

    assert result.problems == [
        f"file {name} of snapshot credit@0 is missing; restore it or re-ingest"
    ]
    with pytest.raises(SnapshotError, match="credit@0 cannot be read"):
        store.load("credit", 0)


def test_a_lost_manifest_is_reported_then_recorded_by_the_next_ingest(
    store: SnapshotStore, loans: pd.DataFrame
) -> None:
    snap = store.ingest("credit", _raw(loans)).snapshot
    manifest = Path(store.root) / "credit" / "_shipml" / f"v{0:020d}.json"
    manifest.unlink()

    lost = store.get("credit")
    before = store.verify("credit")
    again = store.ingest("credit", _raw(loans))

    assert lost.files == {}
    assert not before.ok and "has no file manifest" in before.problems[0]
    assert again.created is False and again.snapshot.files == snap.files
    assert manifest.exists() and store.verify("credit").ok


def test_a_relative_root_is_anchored_where_the_store_was_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loans: pd.DataFrame
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SnapshotStore("relative/data")
    store.ingest("credit", _raw(loans))
    monkeypatch.chdir("/")

    assert store.root == str(tmp_path / "relative" / "data")
    assert store.get("credit").rows == 4


def test_public_api_is_pinned() -> None:
    assert sorted(shipml.data.__all__) == [
        "IngestResult",
        "RawSource",
        "Snapshot",
        "SnapshotStore",
        "SourceFormat",
        "VerifyResult",
        "read_source",
    ]


def test_importing_the_module_stays_cheap() -> None:
    code = (
        "import sys, shipml.data.snapshots, shipml.data; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'deltalake', 'sqlalchemy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"
