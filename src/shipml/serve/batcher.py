"""Adaptive micro-batching: concurrent requests share one model call.

Requests queue up per variant; one task takes what is queued (at most `max_batch_rows`, a
request larger than that alone), runs a single `predict` on a worker thread, and hands each
request its rows back. While the model runs, new requests queue, so the next batch is as large
as the load: under light load a request waits at most `max_wait` for company, under heavy load
it waits for one model call. Per-call overhead (input checks in scikit-learn, DataFrame
construction) is paid once per batch instead of once per request, which is where most of a
small model's time goes.

`max_queue_rows` bounds the rows admitted but not yet answered; beyond it `Overloaded` is
raised at once (the server answers 503 with Retry-After), so admitted requests keep their
latency instead of all of them timing out together. `predict(batch, timeout)` raises
TimeoutError when no answer is ready in time; a request that timed out is left out of the
next model call.

A model call that runs longer than `stuck_after_s` makes the variant *stuck*: `stuck_for()`
says for how long (the server's readiness turns red), and new requests get `Stuck` at once
instead of queueing behind the call. Each variant has its own batcher and its own model
thread, so a stuck call holds only its own variant; the thread is a daemon, so a call that
never returns does not keep the process from exiting, and `close()` never waits for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipml.serve.inputs import Batch
from shipml.serve.model import ServedModel


class Overloaded(Exception):
    """The queue is full; retry later."""


class ModelError(Exception):
    """The model raised on this request's rows."""


class Stuck(Exception):
    """The variant's current model call has run longer than `stuck_after_s`; retry later."""


@dataclass(slots=True)
class _Pending:
    batch: Batch
    future: asyncio.Future[np.ndarray]
    deadline: float  # time.perf_counter() after which the request gets TimeoutError


class Batcher:
    def __init__(
        self,
        model: ServedModel,
        *,
        max_batch_rows: int,
        max_wait_s: float,
        max_queue_rows: int,
        stuck_after_s: float = math.inf,
        on_call: Callable[[float], None] | None = None,
    ) -> None:
        self.model = model
        self.on_call = on_call  # gets the CPU seconds of each model call that answered
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.max_queue_rows = max_queue_rows
        self.stuck_after_s = stuck_after_s
        self.queued_rows = 0
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake: asyncio.Future[None] | None = None
        # One thread: model calls run one at a time (no OpenMP team per request thread), and
        # the event loop keeps parsing and answering requests meanwhile.
        self._thread = _ModelThread(f"model-{model.name}")
        self._call_started: float | None = None  # time.perf_counter() of the running call
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stuck_for(self) -> float:
        """How long the running model call has run, if longer than `stuck_after_s`; else 0."""
        started = self._call_started
        running = 0.0 if started is None else time.perf_counter() - started
        return running if running > self.stuck_after_s else 0.0

    async def predict(self, batch: Batch, timeout: float | None = None) -> np.ndarray:
        """The positive-class probabilities of `batch`'s rows.

        Raises Overloaded at once when the queue is full, Stuck at once when the running model
        call has run too long, TimeoutError when no answer is ready within `timeout` seconds,
        ModelError when the model raises on these rows.
        """
        if stuck := self.stuck_for():
            raise Stuck(f"variant's model call has run {stuck:.1f} s (serve.stuck_call_s)")
        if self.queued_rows + batch.rows > self.max_queue_rows and self.queued_rows > 0:
            raise Overloaded(f"{self.queued_rows} rows already queued")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        if timeout is None:
            deadline, timer = math.inf, None
        else:
            deadline = time.perf_counter() + timeout
            timer = loop.call_later(timeout, _expire, future)
        self.queued_rows += batch.rows
        self._queue.append(_Pending(batch, future, deadline))
        self._wake_up()
        try:
            return await future
        finally:
            self.queued_rows -= batch.rows
            if timer is not None:
                timer.cancel()

    async def close(self, timeout: float = 30.0) -> None:
        """Answer everything queued (for at most `timeout` seconds), then stop."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.queued_rows and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._thread.stop()  # never joined: a stuck call must not hold the event loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = await self._collect()
            live = [p for p in group if not p.future.done()]  # timed-out requests are skipped
            if not live:
                continue
            try:
                batches = [p.batch for p in live]
                proba, cpu = await self._call(loop, self._predict, batches)
            except Exception:
                await self._one_by_one(live)  # only the offending request fails
                continue
            if self.on_call is not None:
                self.on_call(cpu)
            now = time.perf_counter()
            start = 0
            for p in live:
                end = start + p.batch.rows
                if not p.future.done():
                    if now > p.deadline:  # answered, but too late for its client
                        p.future.set_exception(TimeoutError())
                    else:
                        p.future.set_result(proba[start:end])
                start = end

    async def _call(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[[Any], Any], arg: Any
    ) -> Any:
        self._call_started = time.perf_counter()
        try:
            return await self._thread.run(loop, fn, arg)
        finally:
            self._call_started = None

    def _predict(self, batches: list[Batch]) -> tuple[np.ndarray, float]:
        """On the model thread: the merge (numpy copies) is off the event loop too. Also
        returns the CPU time of the model call on this thread (`time.thread_time`): what the
        model costs, without the time it waited for the GIL or a core, which depends on the
        other variants' traffic in this process (see docs/architecture.md, Releases)."""
        batch = _merge(batches)
        cpu = time.thread_time()
        proba = self.model.predict(batch)
        return proba, time.thread_time() - cpu

    async def _collect(self) -> list[_Pending]:
        """What is queued, up to `max_batch_rows`, waiting at most `max_wait_s` for more.

        The wait starts when the first request is taken, which under load is when the previous
        model call ends: the requests answered by that call have `max_wait_s` to come back
        and join, so every client ends up in one batch instead of two alternating halves
        (measured: 16 rows per call instead of 8 with 16 connections of one row each).
        """
        loop = asyncio.get_running_loop()
        queue = self._queue
        while not queue:
            await self._sleep(None)
        first = queue.popleft()
        group, rows = [first], first.batch.rows
        deadline = time.perf_counter() + self.max_wait_s
        while True:
            while queue and rows + queue[0].batch.rows <= self.max_batch_rows:
                item = queue.popleft()
                group.append(item)
                rows += item.batch.rows
            if queue or rows >= self.max_batch_rows:
                break  # full: the rest waits for the next call
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            await self._sleep(loop.call_later(remaining, self._wake_up))
        return group

    async def _sleep(self, timer: asyncio.TimerHandle | None) -> None:
        """Until a request is queued (predict() wakes us) or `timer` fires."""
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _one_by_one(self, group: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for p in group:
            try:
                proba = await self._call(loop, self.model.predict, p.batch)
            except Exception as exc:
                if not p.future.done():
                    p.future.set_exception(ModelError(f"{type(exc).__name__}: {exc}"))
            else:
                if not p.future.done():
                    p.future.set_result(proba)


def _expire(future: asyncio.Future[np.ndarray]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _merge(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    names = batches[0].columns.keys()
    columns = {n: np.concatenate([b.columns[n] for b in batches]) for n in names}
    return Batch(columns=columns, rows=sum(b.rows for b in batches))


class _ModelThread:
    """One daemon thread that runs model calls in order, handing results to the event loop.

    Not a ThreadPoolExecutor: its threads are joined when the interpreter exits, so one model
    call that never returns would keep a stopped server from ever exiting.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def run(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[[Any], np.ndarray], arg: Any
    ) -> asyncio.Future[np.ndarray]:
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._jobs.put((loop, future, fn, arg))
        return future

    def stop(self) -> None:
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn, arg = job
            try:
                outcome: tuple[Any, BaseException | None] = (fn(arg), None)
            except BaseException as exc:  # handed to the awaiting request, like an executor
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop closed while the call ran
                loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled (the batcher was closed)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
