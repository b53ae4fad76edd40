"""Row order is part of a snapshot: the content hash and a seeded split never depend on the
order in which Delta wrote or reads the rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from shipml._hashing import canonical_json, sha256_frame
from shipml.config import load_project
from shipml.data import RawSource, SnapshotStore, read_source
from shipml.errors import SnapshotError
from shipml.train.run import Split, split_frame

EXAMPLE = Path(__file__).resolve().parents[3] / "examples/credit/data/lending_club.csv.gz"
REPEAT = 300  # 9,857 rows x 300 = 2,957,100 rows: the size of the report in issue 10


def _raw(frame: pd.DataFrame) -> RawSource:
    return RawSource(frame=frame, uri="memory.csv", format="csv", source_hash=sha256_frame(frame))


@pytest.fixture(scope="session")
def big_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example CSV repeated to ~3M rows, written once per session as Parquet (parsing
    a 300 MB CSV would dominate the test). Read back, it is many Arrow chunks, as a big CSV is."""
    path = tmp_path_factory.mktemp("big") / "lending_club_x300.parquet"
    frame = pd.read_csv(EXAMPLE)
    pd.concat([frame] * REPEAT, ignore_index=True).to_parquet(path, index=False)
    return path


def _split_hashes(split: Split) -> tuple[str, str]:
    return sha256_frame(split.train), sha256_frame(split.test)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_3m_row_snapshot_verifies_after_ingest_and_splits_the_same_on_every_read(
    big_parquet: Path, tmp_path: Path
) -> None:
    (tmp_path / "shipml.yaml").write_text(
        "project: credit\ndata:\n  source: data.parquet\ntraining:\n  target: Class\n"
    )
    project = load_project(tmp_path, env={})
    store = SnapshotStore(str(tmp_path / "store"))
    raw = read_source(str(big_parquet))
    assert pa.Table.from_pandas(raw.frame).column("term").num_chunks > 1  # what reordered
    ingested = _split_hashes(split_frame(project, raw.frame))
    snap = store.ingest("credit", raw).snapshot
    del raw

    result = store.verify("credit")
    first = _split_hashes(split_frame(project, store.load("credit", snap.version)))
    second = _split_hashes(split_frame(project, store.load("credit", snap.version)))

    assert snap.rows == 9857 * REPEAT
    assert result.problems == [] and result.ok
    assert first == second == ingested


def test_rows_read_out_of_order_are_put_back_in_ingest_order(
    tmp_path: Path, loans: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SnapshotStore(str(tmp_path / "store"))
    snap = store.ingest("credit", _raw(loans)).snapshot
    # A reader that returns the batches in another order, as delta-rs did for the 3M-row
    # table of the slow test above (that size is too slow for every run).
    real = DeltaTable.to_pyarrow_table

    def reordering(self: DeltaTable, *args: Any, **kwargs: Any) -> pa.Table:
        table = real(self, *args, **kwargs)
        return table.take(list(reversed(range(table.num_rows))))

    monkeypatch.setattr(DeltaTable, "to_pyarrow_table", reordering)

    loaded = store.load("credit", 0)

    pd.testing.assert_frame_equal(loaded, loans.astype({"purpose": "str"}), check_exact=True)
    assert sha256_frame(loaded) == snap.content_hash and store.verify("credit").ok
    assert snap.row_column == "_shipml_row" and "_shipml_row" not in loaded.columns


def test_a_snapshot_from_before_row_order_is_read_and_replaced_by_an_ordered_one(
    tmp_path: Path, loans: pd.DataFrame
) -> None:
    store = SnapshotStore(str(tmp_path / "store"))
    table = pa.Table.from_pandas(loans, preserve_index=False)
    record = {
        "kind": "shipml.snapshot/1",
        "created_at": "2026-01-01T00:00:00+00:00",
        "source": "old.csv",
        "source_hash": "sha256:0",
        "content_hash": sha256_frame(loans.astype({"purpose": "str"})),
        "rows": 4,
        "schema": [[str(c), str(t)] for c, t in loans.dtypes.items()],
    }  # what shipml wrote before rows carried their order: no row_column
    meta = {"userMetadata": canonical_json(record)}
    write_deltalake(
        f"{store.root}/credit", table, commit_properties=CommitProperties(custom_metadata=meta)
    )

    old = store.get("credit")
    loaded = store.load("credit", 0)
    again = store.ingest("credit", _raw(loans))

    assert old.row_column is None
    pd.testing.assert_frame_equal(loaded, loans.astype({"purpose": "str"}))
    assert again.created and again.snapshot.version == 1
    assert again.snapshot.row_column == "_shipml_row"
    assert again.snapshot.content_hash == old.content_hash


def test_a_source_column_named_like_the_row_column_is_refused(
    tmp_path: Path, loans: pd.DataFrame
) -> None:
    store = SnapshotStore(str(tmp_path / "store"))

    with pytest.raises(SnapshotError, match="'_shipml_row', which shipml reserves"):
        store.ingest("credit", _raw(loans.assign(_shipml_row=1)))
