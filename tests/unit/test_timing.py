"""A call's own time keeps what the call waited on itself (a sleep, I/O) and is never more
than its wall time; CPU-hungry neighbours are covered by the latency gate's loaded test."""

from __future__ import annotations

import time

from shipml._timing import Stopwatch


def test_a_sleep_is_the_calls_own_time() -> None:
    with Stopwatch() as watch:
        wall, own = watch.time(lambda: time.sleep(0.05))
        assert watch.exact  # Linux: the run-queue counter is readable here
    assert own <= wall
    assert own >= 0.045  # waiting on itself is not waiting for a CPU


def test_own_time_is_at_least_the_threads_cpu_time() -> None:
    with Stopwatch() as watch:
        start = time.thread_time()
        _, own = watch.time(lambda: sum(i * i for i in range(200_000)))
        cpu = time.thread_time() - start
    assert own >= 0.9 * cpu
