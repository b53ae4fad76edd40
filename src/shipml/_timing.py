"""A call's own time: wall time less the time the thread waited for a CPU.

On a shared machine a call's wall time is its own work plus the time it stood in the run
queue while other processes had the cores. Linux counts the second part per thread
(`/proc/thread-self/schedstat`, field 2, nanoseconds), so subtracting it leaves what the
call itself cost, sleeps and I/O included (a model that waits on something is slow, and must
stay slow here), a CPU-hungry neighbour excluded. The thread's CPU time is a floor under
that figure (the run-queue counter is updated at scheduling points, so it can overshoot a
window by a tick). Where the counter cannot be read, own time is wall time, and `exact`
says so.

Measured on a 2-core machine with four CPU-bound neighbours: a 14 ms pure-Python call took
94-120 ms of wall time and 13.6-19.9 ms of own time (idle: 22-26 ms wall, 14 ms own).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["Stopwatch"]

_SCHEDSTAT = "/proc/thread-self/schedstat"


class Stopwatch:
    """Times calls made on the thread that created it."""

    def __init__(self) -> None:
        try:
            self._file: Any = open(_SCHEDSTAT, "rb", buffering=0)  # noqa: SIM115 (kept open)
            self._waited()
        except (OSError, ValueError, IndexError):
            self._file = None

    @property
    def exact(self) -> bool:
        """True when waits for a CPU are subtracted; False: own time is wall time."""
        return self._file is not None

    def _waited(self) -> float:
        self._file.seek(0)
        return int(self._file.read().split()[1]) / 1e9

    def time(self, call: Callable[[], object]) -> tuple[float, float]:
        """(wall seconds, own seconds) of one `call()`."""
        waited = self._waited() if self._file is not None else 0.0
        cpu, start = time.thread_time(), time.perf_counter()
        call()
        wall = time.perf_counter() - start
        cpu = time.thread_time() - cpu
        if self._file is None:
            return wall, wall
        own = wall - (self._waited() - waited)
        return wall, min(wall, max(own, cpu))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Stopwatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
