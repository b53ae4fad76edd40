"""Synthetic, labelled traffic for a local release (`deploy.analysis.replay`, off by default).

A laptop has no users: a local canary never sees enough requests to be judged, and no labels
for accuracy. With replay on, the controller runs a `Replay` during each step's windows: the
held-out rows of the snapshot the candidate was trained on (the same seeded split as
training) are sent one per request to the local server's own loopback URL, at most
`replay_rate` a second, each with a request id, and their true labels follow to /feedback.
The server routes them by weight like any request, so each variant is judged on its share.
Every verdict records how many of its window's requests were synthetic, and `shipml status`
says so: such a release was judged on replayed data, not on its users.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shipml.errors import UsageError

if TYPE_CHECKING:
    from shipml.config import Project

__all__ = ["Replay", "held_out"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_LABELS_PER_POST = 50
_THREADS = 4  # one sender waits for each answer; a few keep up with `rate` on a busy laptop


def held_out(project: Project, version: int) -> tuple[list[str], list[list[Any]], list[Any]]:
    """Columns, rows and labels of the held-out split of `version`'s training snapshot."""
    from shipml.data.snapshots import SnapshotStore
    from shipml.registry.models import get_version
    from shipml.train.run import split_frame

    ref = get_version(project, version).tags.get("shipml.snapshot", "")
    dataset, _, number = ref.rpartition("@")
    if not dataset or not number.isdigit():
        raise UsageError(
            f"{project.model_name}:{version} names no training snapshot (tag shipml.snapshot is "
            f"{ref!r}), so there are no held-out rows to replay; register it with `shipml run`, "
            f"or set deploy.analysis.replay: false"
        )
    split = split_frame(project, SnapshotStore(project.snapshot_root).load(dataset, int(number)))
    table = json.loads(split.X_test.to_json(orient="split", index=False))
    labels = split.y_test.tolist()  # Python scalars, as JSON and str() want them
    return table["columns"], table["data"], labels


@dataclass
class Replay:
    """Sends `rows` to `url` (loopback only) from a few threads while in its `with` block, at
    most `rate` requests a second in all and for at most `max_seconds`; `sent` counts the
    answered ones (their labels are posted), `failed` the others."""

    url: str
    columns: list[str]
    rows: list[list[Any]]
    labels: list[Any]
    rate: float
    max_seconds: float
    sent: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
            raise UsageError(
                f"replayed traffic goes to a local server on loopback only, not {self.url}; "
                f"set deploy.analysis.replay: false for this target"
            )
        if not self.rows:
            raise UsageError("the held-out split is empty: nothing to replay")
        self._host, self._port = parts.hostname, parts.port or 80

    def __enter__(self) -> Replay:
        self._threads = [
            threading.Thread(target=self._work, args=(t,), name="shipml-replay", daemon=True)
            for t in range(_THREADS)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _work(self, offset: int) -> None:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=10)
        run, labels = uuid.uuid4().hex[:8], []
        period, deadline = _THREADS / self.rate, time.monotonic() + self.max_seconds
        next_at, i = time.monotonic() + offset * period / _THREADS, offset
        while not self._stop.is_set() and time.monotonic() < deadline:
            k = i % len(self.rows)
            request_id = f"replay-{run}-{i}"
            body = {"dataframe_split": {"columns": self.columns, "data": [self.rows[k]]}}
            ok = self._post(conn, "/invocations", body, request_id) == 200
            with self._lock:
                self.sent, self.failed = self.sent + ok, self.failed + (not ok)
            if ok:
                labels.append({"request_id": request_id, "label": self.labels[k]})
            if len(labels) >= _LABELS_PER_POST:
                self._post(conn, "/feedback", {"feedback": labels})
                labels = []
            i += _THREADS
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if labels:
            self._post(conn, "/feedback", {"feedback": labels})
        conn.close()

    def _post(
        self, conn: http.client.HTTPConnection, path: str, body: Any, request_id: str = ""
    ) -> int:
        headers = {"Content-Type": "application/json"}
        if request_id:
            headers["x-request-id"] = request_id
        try:
            conn.request("POST", path, json.dumps(body), headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()  # the next request reconnects (the server may be swapping a model)
            return 0
