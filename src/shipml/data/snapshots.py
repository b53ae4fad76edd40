"""Immutable, versioned snapshots of a dataset: one Delta Lake table per dataset.

    <root>/<dataset>/_delta_log/          the Delta log: one commit per snapshot
    <root>/<dataset>/part-*.parquet       data files, named by Delta
    <root>/<dataset>/_shipml/v<N>.json    sha256 of every data file of snapshot N

Snapshot N is Delta version N, written in overwrite mode, so it holds exactly what ingest N
read. Its commit carries the snapshot record as JSON in `userMetadata` (which Spark shows in
DESCRIBE HISTORY), so the table describes itself. The commit is atomic: a process killed
mid-ingest leaves the previous snapshot as the latest. The file manifest is written after the
commit; should that step be lost, `verify` says so and the next identical ingest records it.

Row order is part of the data: every row carries its position in the source in a hidden
column `_shipml_row`, and a read puts the rows back in that order (and drops the column). Delta
writers and readers may reorder record batches (delta-rs does for a many-chunk Arrow table),
so neither the content hash nor a seeded split may depend on the physical order. Snapshots
written before this column existed (record without `row_column`) are read in stored order;
an ingest of the same content writes a new, ordered version instead of reusing them.

A killed ingest can leave a data file that no commit references: `orphans` lists such files,
`verify` reports them, and `remove_orphans` deletes those older than a grace period (younger
ones may belong to an ingest still running).
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipml._hashing import canonical_json, sha256_frame
from shipml.data import _manifest, _order
from shipml.data._frames import prepare, to_frame
from shipml.errors import SnapshotError, UsageError

if TYPE_CHECKING:
    import pandas as pd
    from pyarrow.fs import FileSystem

    from shipml.data.sources import RawSource

__all__ = ["IngestResult", "Snapshot", "SnapshotStore", "VerifyResult"]

ROW_COLUMN = _order.ROW_COLUMN

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_KIND = "shipml.snapshot/1"
# Snapshots are kept forever: never let a checkpoint or VACUUM (here or in Spark) drop the
# log entries or files that time travel needs.
_TABLE_CONFIG: dict[str, str | None] = {
    "delta.enableExpiredLogCleanup": "false",
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
}


@dataclass(frozen=True)
class Snapshot:
    """One ingested version of a dataset. `files` maps data-file paths (relative to the
    table) to their sha256; it is empty only if the ingest was cut short after its commit."""

    dataset: str
    version: int
    created_at: str
    source: str
    source_hash: str
    content_hash: str
    rows: int
    schema: list[tuple[str, str]]
    files: dict[str, str]
    row_column: str | None = None  # None: written before rows carried their order

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


@dataclass(frozen=True)
class IngestResult:
    snapshot: Snapshot
    created: bool


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    problems: list[str]
    orphans: list[str] = field(default_factory=list)


class SnapshotStore:
    """Snapshots under `root`: a local folder or an object-store URI (s3://, gs://, ...)."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        self.root = root.rstrip("/") if "://" in root else str(Path(root).absolute())
        self._options = storage_options

    def ingest(self, dataset: str, raw: RawSource) -> IngestResult:
        """Record `raw` as the next snapshot, unless it equals the latest one."""
        from deltalake import CommitProperties, PostCommitHookProperties, write_deltalake

        uri = self._uri(dataset)
        table, schema, frame = prepare(raw.frame, f"data from {raw.uri!r}")
        content_hash = sha256_frame(frame)
        table = _order.with_row_column(table, f"data from {raw.uri!r}")
        exists = self._exists(uri)
        latest = self._snapshots(dataset)[-1:] if exists else []
        if latest and latest[0].content_hash == content_hash and latest[0].row_column:
            if latest[0].files:
                return IngestResult(latest[0], created=False)
            if self._actual_hash(latest[0]) == content_hash:  # manifest lost after commit
                files = self._write_manifest(dataset, latest[0].version)
                return IngestResult(replace(latest[0], files=files), created=False)
        record = {
            "kind": _KIND,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": raw.uri,
            "source_hash": raw.source_hash,
            "content_hash": content_hash,
            "rows": len(frame),
            "schema": schema,
            "row_column": ROW_COLUMN,
        }
        metadata = canonical_json(record)
        write_deltalake(
            uri,
            table,
            mode="overwrite",
            schema_mode="overwrite",
            configuration=None if exists else _TABLE_CONFIG,
            storage_options=self._options,
            commit_properties=CommitProperties(custom_metadata={"userMetadata": metadata}),
            post_commithook_properties=PostCommitHookProperties(cleanup_expired_logs=False),
        )
        version = self._committed_version(uri, metadata)
        files = self._write_manifest(dataset, version)
        return IngestResult(_snapshot(dataset, version, record, files), created=True)

    def datasets(self) -> builtins.list[str]:
        from pyarrow import fs

        filesystem, base = fs.FileSystem.from_uri(self.root)
        infos = filesystem.get_file_info(fs.FileSelector(base, allow_not_found=True))
        names = (i.base_name for i in infos if i.type == fs.FileType.Directory)
        return sorted(n for n in names if _NAME.match(n) and self._exists(self._uri(n)))

    def list(self, dataset: str) -> builtins.list[Snapshot]:
        """Every snapshot of `dataset`, oldest first."""
        snapshots = self._snapshots(dataset) if self._exists(self._uri(dataset)) else []
        if not snapshots:
            known = ", ".join(self.datasets()) or "none"
            raise SnapshotError(
                f"no snapshots of dataset {dataset!r} in {self.root} (datasets: {known}); "
                f"run `shipml ingest` first"
            )
        return snapshots

    def get(self, dataset: str, version: int | None = None) -> Snapshot:
        """Snapshot `version` of `dataset`, or the latest one."""
        snapshots = self.list(dataset)
        if version is None:
            return snapshots[-1]
        for snapshot in snapshots:
            if snapshot.version == version:
                return snapshot
        raise SnapshotError(
            f"no snapshot {dataset}@{version}; versions are "
            f"{_span([s.version for s in snapshots])}; run `shipml snapshots list`"
        )

    def load(self, dataset: str, version: int) -> pd.DataFrame:
        """Exactly the rows and dtypes of snapshot `version` (Delta time travel)."""
        snapshot = self.get(dataset, version)
        try:
            return self._read(snapshot)
        except Exception as exc:  # deltalake, pyarrow and OS errors alike
            raise SnapshotError(
                f"snapshot {snapshot.ref} cannot be read ({type(exc).__name__}: {exc}); "
                f"run `shipml snapshots verify` to find the damaged file"
            ) from None

    def verify(self, dataset: str, version: int | None = None) -> VerifyResult:
        """Recompute every file hash and the content hash of a snapshot (default: latest),
        and name the table's orphan files (any orphan fails it too)."""
        snapshot = self.get(dataset, version)
        filesystem, base = self._fs(dataset)
        problems = []
        if not snapshot.files:
            problems.append(
                f"snapshot {snapshot.ref} has no file manifest (its ingest stopped after the "
                f"commit); ingest the same source again to record it"
            )
        for path, recorded in sorted(snapshot.files.items()):
            try:
                actual = _manifest.sha256_at(filesystem, f"{base}/{path}")
            except FileNotFoundError:
                problems.append(
                    f"file {path} of snapshot {snapshot.ref} is missing; restore it or re-ingest"
                )
                continue
            if actual != recorded:
                problems.append(
                    f"file {path} of snapshot {snapshot.ref} was modified (sha256 {actual} != "
                    f"recorded {recorded}); restore it or re-ingest"
                )
        if not problems or not snapshot.files:
            content = self._actual_hash(snapshot)
            if content != snapshot.content_hash:
                problems.append(
                    f"content of snapshot {snapshot.ref} "
                    f"{'cannot be read' if content is None else f'hashes to {content}'}, "
                    f"recorded {snapshot.content_hash}; restore its files or re-ingest"
                )
        orphans = sorted(self.orphans(dataset))
        problems += [
            f"file {path} of table {dataset} belongs to no snapshot (left by an ingest that "
            f"stopped before its commit); remove it with `shipml snapshots clean`"
            for path in orphans
        ]
        return VerifyResult(ok=not problems, problems=problems, orphans=orphans)

    def orphans(self, dataset: str) -> dict[str, float]:
        """Data files in the table folder that no commit references: {path: age in seconds}.

        Empty when the Delta log does not start at version 0 (a file may then be referenced
        by a commit that is gone, so none is called unused).
        """
        import time

        filesystem, base = self._fs(dataset)
        committed = _manifest.committed_files(filesystem, base)
        if committed is None:
            return {}
        now = time.time()
        found = _manifest.data_files(filesystem, base)
        return {p: max(0.0, now - m) for p, m in sorted(found.items()) if p not in committed}

    def remove_orphans(
        self, dataset: str, min_age: float
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Delete the orphans at least `min_age` seconds old; (removed, kept as too recent).

        A younger one may be the data file of an ingest that is about to commit it.
        """
        self.list(dataset)  # a clear error for an unknown dataset
        filesystem, base = self._fs(dataset)
        removed, kept = [], []
        for path, age in self.orphans(dataset).items():
            if age < min_age:
                kept.append(path)
                continue
            filesystem.delete_file(f"{base}/{path}")
            removed.append(path)
        return removed, kept

    # -- internals -------------------------------------------------------------------------

    def _uri(self, dataset: str) -> str:
        if not _NAME.match(dataset):
            raise UsageError(
                f"dataset name {dataset!r} is not valid; use letters, digits, '-' and '_' "
                f"(set data.dataset in shipml.yaml)"
            )
        return f"{self.root}/{dataset}"

    def _fs(self, dataset: str) -> tuple[FileSystem, str]:
        from pyarrow import fs

        filesystem, base = fs.FileSystem.from_uri(self._uri(dataset))
        return filesystem, base.rstrip("/")

    def _exists(self, uri: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(uri, self._options)

    def _snapshots(self, dataset: str) -> builtins.list[Snapshot]:
        from deltalake import DeltaTable

        out = []
        for entry in DeltaTable(self._uri(dataset), storage_options=self._options).history():
            record = _record(entry)
            if record is not None:
                version = int(entry["version"])
                files = _manifest.read(*self._fs(dataset), version)
                out.append(_snapshot(dataset, version, record, files))
        return sorted(out, key=lambda s: s.version)

    def _committed_version(self, uri: str, metadata: str) -> int:
        from deltalake import DeltaTable

        for entry in DeltaTable(uri, storage_options=self._options).history(limit=20):
            if entry.get("userMetadata") == metadata:
                return int(entry["version"])
        raise SnapshotError(f"the commit just written to {uri} is not in its history; retry")

    def _read(self, snapshot: Snapshot) -> pd.DataFrame:
        from deltalake import DeltaTable

        uri = self._uri(snapshot.dataset)
        table = DeltaTable(uri, version=snapshot.version, storage_options=self._options)
        data = table.to_pyarrow_table()
        if snapshot.row_column:
            data = _order.in_row_order(data, snapshot.row_column, snapshot.rows)
        return to_frame(data, snapshot.schema)

    def _actual_hash(self, snapshot: Snapshot) -> str | None:
        try:
            return sha256_frame(self._read(snapshot))
        except Exception:  # unreadable is an answer here, reported by the caller
            return None

    def _write_manifest(self, dataset: str, version: int) -> dict[str, str]:
        import pyarrow as pa
        from deltalake import DeltaTable

        table = DeltaTable(self._uri(dataset), version=version, storage_options=self._options)
        paths = pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()
        return _manifest.write(*self._fs(dataset), version, paths)


def _record(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The snapshot record of a Delta commit, or None for commits shipml did not write."""
    try:
        record = json.loads(entry.get("userMetadata") or "null")
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("kind") == _KIND else None


def _snapshot(
    dataset: str, version: int, record: dict[str, Any], files: dict[str, str]
) -> Snapshot:
    return Snapshot(
        dataset=dataset,
        version=version,
        created_at=record["created_at"],
        source=record["source"],
        source_hash=record["source_hash"],
        content_hash=record["content_hash"],
        rows=int(record["rows"]),
        schema=[(str(c), str(t)) for c, t in record["schema"]],
        files=files,
        row_column=record.get("row_column"),
    )


def _span(versions: list[int]) -> str:
    contiguous = versions == list(range(versions[0], versions[-1] + 1))
    if contiguous and len(versions) > 1:
        return f"{versions[0]}..{versions[-1]}"
    return ", ".join(map(str, versions))
