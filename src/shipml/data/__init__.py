"""Raw sources in, immutable versioned snapshots (Delta Lake tables) out.

raw = read_source("data/loans.csv")
store = SnapshotStore(".shipml/data")
snapshot = store.ingest("credit", raw).snapshot     # credit@0, content-hashed
frame = store.load("credit", snapshot.version)      # exactly that version, later too
"""

from shipml.data.snapshots import IngestResult, Snapshot, SnapshotStore, VerifyResult
from shipml.data.sources import RawSource, SourceFormat, read_source

__all__ = [
    "IngestResult",
    "RawSource",
    "Snapshot",
    "SnapshotStore",
    "SourceFormat",
    "VerifyResult",
    "read_source",
]
