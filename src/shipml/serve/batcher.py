"""Adaptive micro-batching: concurrent requests share one model call.

Requests queue up per variant; one task takes what is queued (up to `max_batch_rows`), runs a
single `predict` on a worker thread, and hands each request its rows back. While the model
runs, new requests queue, so the next batch is as large as the load: under light load a
request waits at most `max_wait` for company, under heavy load it waits for one model call.
Per-call overhead (input checks in scikit-learn, DataFrame construction) is paid once per
batch instead of once per request, which is where most of a small model's time goes.

`max_queue_rows` bounds the rows admitted but not yet answered; beyond it `Overloaded` is
raised at once (the server answers 503 with Retry-After), so admitted requests keep their
latency instead of all of them timing out together.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from shipml.serve.inputs import Batch
from shipml.serve.model import ServedModel


class Overloaded(Exception):
    """The queue is full; retry later."""


class ModelError(Exception):
    """The model raised on this request's rows."""


@dataclass
class _Pending:
    batch: Batch
    future: asyncio.Future[np.ndarray]


class Batcher:
    def __init__(
        self,
        model: ServedModel,
        *,
        max_batch_rows: int,
        max_wait_s: float,
        max_queue_rows: int,
    ) -> None:
        self.model = model
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.max_queue_rows = max_queue_rows
        self.queued_rows = 0
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # One thread: model calls run one at a time (no OpenMP team per request thread), and
        # the event loop keeps parsing and answering requests meanwhile.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{model.name}")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def predict(self, batch: Batch) -> np.ndarray:
        if self.queued_rows + batch.rows > self.max_queue_rows and self.queued_rows > 0:
            raise Overloaded(f"{self.queued_rows} rows already queued")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.queued_rows += batch.rows
        self._queue.put_nowait(_Pending(batch, future))
        try:
            return await future
        finally:
            self.queued_rows -= batch.rows

    async def close(self, timeout: float = 30.0) -> None:
        """Answer everything queued (for at most `timeout` seconds), then stop."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.queued_rows and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = await self._collect()
            live = [p for p in group if not p.future.done()]  # timed-out requests are skipped
            if not live:
                continue
            try:
                merged = _merge([p.batch for p in live])
                proba = await loop.run_in_executor(self._executor, self.model.predict, merged)
            except Exception:
                await self._one_by_one(live)  # only the offending request fails
                continue
            start = 0
            for p in live:
                end = start + p.batch.rows
                if not p.future.done():
                    p.future.set_result(proba[start:end])
                start = end

    async def _collect(self) -> list[_Pending]:
        first = await self._queue.get()
        group, rows = [first], first.batch.rows
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while rows < self.max_batch_rows:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            group.append(item)
            rows += item.batch.rows
        return group

    async def _one_by_one(self, group: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for p in group:
            try:
                proba = await loop.run_in_executor(self._executor, self.model.predict, p.batch)
            except Exception as exc:
                if not p.future.done():
                    p.future.set_exception(ModelError(f"{type(exc).__name__}: {exc}"))
            else:
                if not p.future.done():
                    p.future.set_result(proba)


def _merge(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    names = batches[0].columns.keys()
    columns = {n: np.concatenate([b.columns[n] for b in batches]) for n in names}
    return Batch(columns=columns, rows=sum(b.rows for b in batches))
