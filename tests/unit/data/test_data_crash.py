"""A process killed in the middle of an ingest leaves the store at its previous snapshot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from shipml._hashing import sha256_frame
from shipml.data import SnapshotStore, read_source

# Runs in a child process: an ingest whose Delta write hangs after taking its first row,
# i.e. while delta-rs is inside the write, holding part of the new data.
_CHILD = """
import sys, time, pathlib
import deltalake, pyarrow as pa
from shipml.data import SnapshotStore, read_source

root, source, marker = sys.argv[1:4]
real_write = deltalake.write_deltalake

def hanging_write(uri, data, **kwargs):
    batches = data.to_batches(max_chunksize=1)

    def rows():
        yield batches[0]
        pathlib.Path(marker).write_text("inside the write")
        time.sleep(600)
        yield from batches[1:]

    reader = pa.RecordBatchReader.from_batches(data.schema, rows())
    return real_write(uri, reader, **kwargs)

deltalake.write_deltalake = hanging_write
SnapshotStore(root).ingest("credit", read_source(source))
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_mid_ingest_keeps_the_previous_snapshot(
    tmp_path: Path, loans: pd.DataFrame, loans_csv: Path
) -> None:
    store = SnapshotStore(str(tmp_path / "store"))
    first = store.ingest("credit", read_source(str(loans_csv))).snapshot
    bigger = tmp_path / "bigger.csv"
    pd.concat([loans, loans.assign(id=loans["id"] + 4)]).to_csv(bigger, index=False)
    marker = tmp_path / "inside"

    log = tmp_path / "child.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, store.root, str(bigger), str(marker)], stderr=stderr
        ) as child,
    ):
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert child.poll() is None, f"child ended before the write: {log.read_text()}"
            assert time.monotonic() < deadline, "child never reached the write"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)

    assert child.returncode == -signal.SIGKILL
    assert store.list("credit") == [first]
    assert sha256_frame(store.load("credit", 0)) == first.content_hash
    assert store.verify("credit").ok
    after = store.ingest("credit", read_source(str(bigger)))
    assert after.created and after.snapshot.version == 1 and after.snapshot.rows == 8
    assert store.verify("credit").ok
