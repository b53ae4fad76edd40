"""Sampled log of predictions and a store for their delayed true labels, both as Parquet.

`InferenceLog.record` runs on the event loop for every request. It samples by a hash of the
request id, then puts the caller's objects (by reference: nothing is copied or converted) on a
C `SimpleQueue` capped by a size check, so it never blocks; it costs about 0.5 us. When
`max_pending` requests are waiting, it drops the request and counts it in `dropped`. A
background thread polls the queue, batches, converts and writes one Parquet file per batch and
day, atomically (temp file + rename):

    <directory>/<model>/date=YYYY-MM-DD/part-<utc time>-<uuid>.parquet
    <directory>/<model>/feedback/date=YYYY-MM-DD/part-<utc time>-<uuid>.parquet

Arrays passed to `record` are read later by the writer: do not mutate them afterwards.
`flush()` and `close()` block until the data is on disk; from async code call them through
`asyncio.to_thread`, after the server stopped serving: a record racing close() may be lost.
pyarrow, numpy and pandas are imported only when first needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from shipml.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["FeedbackLog", "InferenceLog", "read_feedback", "read_log"]

log = logging.getLogger(__name__)
T = TypeVar("T", bound=tuple[Any, ...])  # the first field is the request id
_POLL_SECONDS = 0.05
_LogItem = tuple[str, str, str, Mapping[str, "np.ndarray"], "np.ndarray", float]
_FeedbackItem = tuple[str, object, float]


@dataclass
class _Marker:
    stop: bool
    done: threading.Event = field(default_factory=threading.Event)


class _Writer(Generic[T]):
    """A background thread that turns queued items into atomic Parquet files under `root`.

    `build(items)` returns (date, pyarrow.Table) pairs; tables of one date are concatenated
    with type promotion (int + float -> float) or, if their types cannot be unified, written as
    separate files. An item that cannot be converted is logged, counted and skipped alone.
    """

    def __init__(
        self,
        root: Path,
        build: Callable[[list[T]], list[tuple[str, Any]]],
        rows: Callable[[T], int],
        *,
        flush_rows: int,
        flush_seconds: float,
        max_pending: int,
    ) -> None:
        if flush_rows < 1 or flush_seconds <= 0 or max_pending < 1:
            raise UsageError(
                f"flush_rows={flush_rows}, flush_seconds={flush_seconds}, "
                f"max_pending={max_pending}: all must be positive"
            )
        self._root, self._build, self._rows = root, build, rows
        self._flush_rows, self._flush_seconds = flush_rows, flush_seconds
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[T | _Marker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0
        self.errors = 0

    def submit(self, item: T) -> bool:
        if self._thread is None:
            self._start()
        # Several threads may pass this check at once: the cap is soft by at most that many.
        if self._closed or self._queue.qsize() >= self._max_pending:
            with self._lock:
                self.dropped += 1
                if self.dropped == 1:
                    log.warning(
                        "inference log %s dropped a record (closed or %d pending); "
                        "lower the sample rate or raise max_pending",
                        self._root,
                        self._max_pending,
                    )
            return False
        self._queue.put(item)
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name=f"shipml-log-{self._root.name}", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        self._signal(_Marker(stop=False))

    def close(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        # Re-send the stop marker until the thread is gone: seen in servers under load, a
        # single marker could be missed and a plain join() then hung the whole shutdown.
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            self._queue.put(_Marker(stop=True))
            self._wake.set()
            thread.join(0.5)
        if thread.is_alive():
            log.error("inference log %s: writer did not stop within %.0f s", self._root, timeout)

    def _signal(self, marker: _Marker) -> None:
        thread = self._thread
        if thread is None:
            return
        self._queue.put(marker)
        self._wake.set()
        while not marker.done.wait(0.1) and thread.is_alive():
            pass

    def _run(self) -> None:
        # The thread polls instead of blocking on the queue: a put then never wakes a thread or
        # hands over the GIL, which keeps record() at well under a microsecond.
        batch: list[T] = []
        rows, deadline, stop = 0, 0.0, False
        while not stop:
            self._wake.wait(min(self._flush_seconds, _POLL_SECONDS))
            self._wake.clear()
            markers: list[_Marker] = []
            try:
                for _ in range(self._queue.qsize()):
                    item = self._queue.get_nowait()
                    if isinstance(item, _Marker):
                        markers.append(item)
                        continue
                    if not batch:
                        deadline = time.monotonic() + self._flush_seconds
                    batch.append(item)
                    rows += self._rows(item)
                    if rows >= self._flush_rows:
                        self._write(batch)
                        batch, rows = [], 0
                if batch and (markers or time.monotonic() >= deadline):
                    self._write(batch)
                    batch, rows = [], 0
            except Exception:  # a bug must not stop the thread: the log would fill up silently
                self._fail(f"writer failed; {len(batch)} pending records are lost")
                batch, rows = [], 0
            for marker in markers:
                marker.done.set()
                stop = stop or marker.stop

    def _write(self, items: list[T]) -> None:
        import pyarrow as pa

        try:
            tables = self._build(items)
        except Exception:  # find the bad record(s) outside this handler, to log them alone
            tables = None
        if tables is None:
            tables = []
            for item in items:
                try:
                    tables += self._build([item])
                except Exception:
                    self._fail(f"request {item[0]!r} cannot be converted; it is skipped")
        by_date: dict[str, list[Any]] = {}
        for date, table in tables:
            by_date.setdefault(date, []).append(table)
        for date, group in by_date.items():
            # Types that cannot be unified (int and str) stay in separate files.
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                group = [pa.concat_tables(group, promote_options="permissive")]
            for table in group:
                self._write_file(self._root / f"date={date}", table)

    def _write_file(self, folder: Path, table: Any) -> None:
        import pyarrow.parquet as pq

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = folder / f"part-{stamp}-{uuid.uuid4().hex}.parquet"
        tmp = folder / f".{final.name}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, tmp)
            os.replace(tmp, final)
        except Exception:
            tmp.unlink(missing_ok=True)
            self._fail(f"cannot write {final}; {table.num_rows} rows are lost")

    def _fail(self, message: str) -> None:
        self.errors += 1
        log.exception("inference log %s: %s", self._root, message)


class _Buffered:
    _writer: _Writer[Any]

    @property
    def dropped(self) -> int:
        """Records refused because the queue was full or the log was closed."""
        return self._writer.dropped

    @property
    def errors(self) -> int:
        """Records or files the writer failed to convert or write (each one is logged)."""
        return self._writer.errors

    def flush(self) -> None:
        """Block until everything recorded so far is on disk."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and stop the writer; later records are dropped. Idempotent."""
        self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InferenceLog(_Buffered):
    """Predictions of a sample of requests, one row per predicted row."""

    def __init__(
        self,
        directory: Path,
        *,
        model: str,
        sample_rate: float,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        max_pending: int = 100_000,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise UsageError(f"sample_rate must be within 0..1, got {sample_rate}")
        self._threshold = int(sample_rate * 2**32)
        self._salt = (seed or 0) & 0xFFFFFFFF
        self._writer = _Writer[_LogItem](
            _model_dir(directory, model),
            _log_tables,
            _log_rows,
            flush_rows=flush_rows,
            flush_seconds=flush_seconds,
            max_pending=max_pending,
        )

    def record(
        self,
        request_id: str,
        variant: str,
        version: str,
        inputs: Mapping[str, np.ndarray],
        outputs: np.ndarray,
        at: float | None = None,
    ) -> bool:
        """Queue the request if sampled; True when queued. `outputs` is (n,) or (n, classes).

        Whether a request is sampled depends only on its id and the seed: every record of one
        request id (the served variant and its shadows) is kept or skipped together."""
        # A 32-bit hash of the id against a threshold. crc32 alone clumps on sequential ids
        # ("req-1", "req-2", ...); murmur3's finalizer spreads it evenly (~0.3 us in total).
        if self._threshold <= 0xFFFFFFFF:
            x = zlib.crc32(request_id.encode(), self._salt)
            x = ((x ^ (x >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
            x = ((x ^ (x >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
            if x ^ (x >> 16) >= self._threshold:
                return False
        when = time.time() if at is None else at
        return self._writer.submit((request_id, variant, version, inputs, outputs, when))


class FeedbackLog(_Buffered):
    """True labels that arrive after the prediction, keyed by request id."""

    def __init__(self, directory: Path, *, model: str) -> None:
        root = _model_dir(directory, model) / "feedback"
        self._writer = _Writer[_FeedbackItem](
            root,
            _feedback_tables,
            lambda _: 1,
            flush_rows=5000,
            flush_seconds=5.0,
            max_pending=100_000,
        )

    def record(self, request_id: str, label: object, at: float | None = None) -> bool:
        """Queue a label (stored as its `str`; None stays null); True when queued."""
        return self._writer.submit((request_id, label, time.time() if at is None else at))


def read_log(directory: Path, model: str) -> pd.DataFrame:
    """Every logged row, with a `date` column from the partition; empty (typed) if none."""
    return _read(_model_dir(directory, model), _schemas()[0])


def read_feedback(directory: Path, model: str) -> pd.DataFrame:
    """Every recorded label, with a `date` column from the partition; empty (typed) if none."""
    return _read(_model_dir(directory, model) / "feedback", _schemas()[1])


def _model_dir(directory: Path, model: str) -> Path:
    if not model or model.startswith(".") or not all(c.isalnum() or c in "-_." for c in model):
        raise UsageError(f"model name {model!r} cannot be a folder; use letters, digits, '-_.'")
    return Path(directory) / model


def _date(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _log_rows(item: _LogItem) -> int:
    try:
        return len(item[4])
    except TypeError:
        return 1


def _log_tables(items: list[_LogItem]) -> list[tuple[str, Any]]:
    """One table per day and input signature: same-typed arrays are concatenated, not copied
    row by row."""
    import numpy as np
    import pyarrow as pa

    groups: dict[tuple[object, ...], list[tuple[_LogItem, dict[str, Any], Any]]] = {}
    for item in items:
        out = np.asarray(item[4], dtype=np.float64)
        out = out[:, -1] if out.ndim == 2 else out.reshape(-1)  # positive class of predict_proba
        inputs = {f"input.{k}": _column(np.asarray(v), len(out)) for k, v in item[3].items()}
        key = (int(item[5] // 86400), *inputs, *(v.dtype for v in inputs.values()))
        groups.setdefault(key, []).append((item, inputs, out))
    tables = []
    for group in groups.values():
        counts = [len(out) for _, _, out in group]
        meta = np.repeat(np.array([it[:3] for it, _, _ in group], dtype=object), counts, axis=0)
        columns = {
            "request_id": pa.array(meta[:, 0], pa.string()),
            "row": pa.array(np.concatenate([np.arange(n, dtype=np.int64) for n in counts])),
            "timestamp": _timestamps(np.repeat([it[5] for it, _, _ in group], counts)),
            "variant": pa.array(meta[:, 1], pa.string()),
            "model_version": pa.array(meta[:, 2], pa.string()),
        }
        for name in group[0][1]:
            columns[name] = pa.array(np.concatenate([inputs[name] for _, inputs, _ in group]))
        columns["output"] = pa.array(np.concatenate([out for _, _, out in group]))
        tables.append((_date(group[0][0][5]), pa.table(columns)))
    return tables


def _column(values: np.ndarray, rows: int) -> np.ndarray:
    return values if values.shape == (rows,) else values.reshape(rows)


def _feedback_tables(items: list[_FeedbackItem]) -> list[tuple[str, Any]]:
    import pyarrow as pa

    by_date: dict[str, list[_FeedbackItem]] = {}
    for item in items:
        by_date.setdefault(_date(item[2]), []).append(item)
    tables = []
    for date, group in by_date.items():
        ids, labels, ats = zip(*group, strict=True)
        text = [None if label is None else str(label) for label in labels]
        columns = {"request_id": pa.array(ids, pa.string()), "label": pa.array(text, pa.string())}
        tables.append((date, pa.table({**columns, "timestamp": _timestamps(ats)})))
    return tables


def _timestamps(seconds: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    micros = np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    return pa.array(micros, pa.timestamp("us", tz="UTC"))


def _schemas() -> tuple[Any, Any]:
    """Fixed columns of (log, feedback); log inputs go between model_version and output."""
    import pyarrow as pa

    s, ts = pa.string(), pa.timestamp("us", tz="UTC")
    head = [("request_id", s), ("row", pa.int64()), ("timestamp", ts), ("variant", s)]
    log = pa.schema([*head, ("model_version", s), ("output", pa.float64()), ("date", s)])
    return log, pa.schema([("request_id", s), ("label", s), ("timestamp", ts), ("date", s)])


def _read(root: Path, base: Any) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    files = sorted(str(p) for p in root.glob("date=*/*.parquet"))
    types: dict[str, list[Any]] = {f.name: [f.type] for f in base}
    for path in files:
        for f in pq.read_schema(path):
            types.setdefault(f.name, []).append(f.type)
    fields = []
    for name, candidates in types.items():
        try:  # int64 in one file and float64 in another read as float64
            one = [pa.schema([(name, t)]) for t in candidates]
            fields.append(pa.unify_schemas(one, promote_options="permissive").field(0))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            fields.append(pa.field(name, pa.string()))  # incompatible types read as text
    tail = [f for f in fields if f.name in ("output", "date")]
    schema = pa.schema([f for f in fields if f.name not in ("output", "date")] + tail)
    if not files:
        return schema.empty_table().to_pandas()
    part = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    data = ds.dataset(files, schema=schema, partitioning=part, partition_base_dir=str(root))
    return data.to_table().to_pandas()
