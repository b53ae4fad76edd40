"""The background writer behind the inference and feedback logs: queued items in, atomic
Parquet files out, never blocking the caller (see inference_log.py for what is logged)."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from shipml.errors import UsageError

log = logging.getLogger("shipml.serve.inference_log")
T = TypeVar("T", bound=tuple[Any, ...])  # the first field is the request id
_POLL_SECONDS = 0.05


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
        # hands over the GIL, which keeps record() at well under a microsecond. What arrived is
        # converted at every poll, in short bursts: converting a whole file's worth at once
        # held the GIL for 50-100 ms and doubled the server's p99 latency.
        converted: list[tuple[str, Any]] = []  # (date, table) pieces of the next file(s)
        rows, deadline, stop = 0, 0.0, False
        while not stop:
            self._wake.wait(min(self._flush_seconds, _POLL_SECONDS))
            self._wake.clear()
            markers: list[_Marker] = []
            chunk: list[T] = []
            try:
                for _ in range(self._queue.qsize()):
                    item = self._queue.get_nowait()
                    if isinstance(item, _Marker):
                        markers.append(item)
                        continue
                    if not converted and not chunk:
                        deadline = time.monotonic() + self._flush_seconds
                    chunk.append(item)
                    rows += self._rows(item)
                    if rows >= self._flush_rows:
                        self._write(converted + self._convert(chunk))
                        converted, chunk, rows = [], [], 0
                if chunk:
                    converted += self._convert(chunk)
                    chunk = []
                if converted and (markers or time.monotonic() >= deadline):
                    self._write(converted)
                    converted, rows = [], 0
            except Exception:  # a bug must not stop the thread: the log would fill up silently
                self._fail("writer failed; the records not yet written are lost")
                converted, rows = [], 0
            for marker in markers:
                marker.done.set()
                stop = stop or marker.stop

    def _convert(self, items: list[T]) -> list[tuple[str, Any]]:
        try:
            return self._build(items)
        except Exception:  # find the bad record(s) outside this handler, to log them alone
            pass
        tables = []
        for item in items:
            try:
                tables += self._build([item])
            except Exception:
                self._fail(f"request {item[0]!r} cannot be converted; it is skipped")
        return tables

    def _write(self, tables: list[tuple[str, Any]]) -> None:
        import pyarrow as pa

        by_date: dict[str, list[Any]] = {}
        for date, table in tables:
            by_date.setdefault(date, []).append(table)
        for date, group in by_date.items():
            # Types that cannot be unified (int and str) stay in separate files.
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                group = [pa.concat_tables(group, promote_options="permissive").combine_chunks()]
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
