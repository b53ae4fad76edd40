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

import logging
import time
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from shipml.errors import UsageError
from shipml.serve._writer import _Writer

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["FeedbackLog", "InferenceLog", "read_feedback", "read_log"]

log = logging.getLogger(__name__)
_LogItem = tuple[str, str, str, Mapping[str, "np.ndarray"], "np.ndarray", float]
_FeedbackItem = tuple[str, object, float]


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
        flush_rows: int = 50_000,
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
    """One table per day and input signature.

    The fast path groups by day and column names only and concatenates each column across the
    group's requests. It is the server's case: every request parsed against one signature,
    every input a 1-D array as long as the output. Checking each array of each request first
    cost 80-100 ms of CPU, holding the GIL, for the 2,650 one-row requests of a 5-second flush,
    and that doubled the server's p99 latency. When the fast path fails (arrays of another
    shape, types Arrow cannot put in one column), the batch is grouped by column types too.
    """
    import pyarrow as pa

    groups: dict[tuple[object, ...], list[_LogItem]] = {}
    for item in items:
        groups.setdefault((int(item[5] // 86400), *item[3]), []).append(item)
    try:
        return [_concatenated(group) for group in groups.values()]
    except (ValueError, TypeError, pa.ArrowException):
        return _log_tables_by_type(items)


def _concatenated(group: list[_LogItem]) -> tuple[str, Any]:
    import numpy as np
    import pyarrow as pa

    outs = [_positive(item[4]) for item in group]
    counts = np.fromiter(map(len, outs), np.int64, len(outs))
    columns = {}
    by_column = zip(*(item[3].values() for item in group), strict=True)  # same names: grouped so
    for name, arrays in zip(group[0][3], by_column, strict=True):
        if not np.array_equal(np.fromiter(map(len, arrays), np.int64, len(arrays)), counts):
            raise ValueError(f"input {name!r} has another length than the output")
        columns[f"input.{name}"] = pa.array(np.concatenate(arrays))
    return _date(group[0][5]), _table(group, counts, columns, np.concatenate(outs))


def _log_tables_by_type(items: list[_LogItem]) -> list[tuple[str, Any]]:
    """Each request's arrays made 1-D, then grouped by day, names and dtypes (slower)."""
    import numpy as np
    import pyarrow as pa

    groups: dict[tuple[object, ...], list[tuple[_LogItem, Mapping[str, Any], Any]]] = {}
    for item in items:
        out = _positive(item[4])
        inputs = {k: _column(np.asarray(v), len(out)) for k, v in item[3].items()}
        key = (int(item[5] // 86400), *inputs, *(v.dtype for v in inputs.values()))
        groups.setdefault(key, []).append((item, inputs, out))
    tables = []
    for group in groups.values():
        counts = np.array([len(out) for _, _, out in group])
        columns = {
            f"input.{name}": pa.array(np.concatenate([inputs[name] for _, inputs, _ in group]))
            for name in group[0][1]
        }
        output = np.concatenate([out for _, _, out in group])
        table = _table([item for item, _, _ in group], counts, columns, output)
        tables.append((_date(group[0][0][5]), table))
    return tables


def _table(group: list[_LogItem], counts: Any, inputs: dict[str, Any], output: Any) -> Any:
    """The log's columns around `inputs`; each request's id, variant and version stored once
    and repeated per row by Arrow."""
    import numpy as np
    import pyarrow as pa

    owner = pa.array(np.repeat(np.arange(len(group)), counts))
    meta = [pa.array([item[i] for item in group], pa.string()).take(owner) for i in range(3)]
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return pa.table(
        {
            "request_id": meta[0],
            "row": pa.array(np.arange(int(counts.sum()), dtype=np.int64) - starts),
            "timestamp": _timestamps(np.repeat([item[5] for item in group], counts)),
            "variant": meta[1],
            "model_version": meta[2],
            **inputs,
            "output": pa.array(output),
        }
    )


def _positive(outputs: Any) -> Any:
    """The positive-class column of predict_proba output, or the outputs as given, as 1-D."""
    import numpy as np

    out = np.asarray(outputs, dtype=np.float64)
    return out[:, -1] if out.ndim == 2 else out.reshape(-1)


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
