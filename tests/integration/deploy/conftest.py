"""Rollouts against a real `shipml serve` process, under load from a bounded loopback client.

`registered` trains the project in ./project once per session and registers seven versions:
1 and 2 are good, 3 fails on 10% of the test traffic, 4 computes ~30 ms longer per call
(CPU-bound), 5 shifts its scores, 6 and 7 are a costlier model of equal cost (~12 ms a
call). `rollout` copies that project for one test, serves version 1 (the first release)
and stops the server afterwards. `Traffic` sends single-row requests from a few threads, bounded
in time and count, and keeps every status and the variant that answered.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipml.config import Project, load_project

HERE = Path(__file__).parent
VERSIONS = {"good": 2, "fail10": 3, "burn": 4, "shift": 5, "heavy": 6, "heavy2": 7}


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shipml.pipeline import run_stages

    root = tmp_path_factory.mktemp("rollout") / "rollout"
    shutil.copytree(HERE / "project", root)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 3))
    label = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.8, size=2000) > 0).astype(int)
    (root / "data").mkdir()
    lines = ["x1,x2,x3,label"] + [
        f"{a:.6f},{b:.6f},{c:.6f},{y}" for (a, b, c), y in zip(x, label, strict=True)
    ]
    (root / "data" / "rows.csv").write_text("\n".join(lines) + "\n")
    for fault in ["none", "none", "fail10", "burn", "shift", "heavy", "heavy"]:
        env = {"SHIPML_TRAINING__PARAMS": json.dumps({"fault": fault})}
        result = run_stages(
            load_project(root, env=env), ["ingest", "train", "evaluate", "register"]
        )
        assert result.ok, result.to_dict()
    return root


@dataclass
class Rollout:
    project: Project

    def controller(self, **env: str) -> Any:
        from shipml.deploy.controller import Controller
        from shipml.deploy.local import LocalTarget
        from shipml.state.store import StateStore

        project = load_project(self.project.root, env=env) if env else self.project
        return Controller(project, StateStore(project.state_url), LocalTarget(project))

    @property
    def url(self) -> str:
        record = json.loads((self.project.deploy_dir / "server.json").read_text())
        return str(record["url"])

    def champion(self) -> int | None:
        from shipml.registry.models import version_for_alias

        return version_for_alias(self.project, "champion")


@pytest.fixture
def rollout(registered: Path, tmp_path: Path) -> Iterator[Rollout]:
    root = tmp_path / "rollout"
    shutil.copytree(registered, root, ignore=shutil.ignore_patterns("deploy", "serve"))
    r = Rollout(load_project(root, env={}))
    first = r.controller().deploy(1)
    assert (first.kind, first.status, r.champion()) == ("initial", "promoted", 1)
    try:
        yield r
    finally:
        r.controller().target.stop()


def rows(n: int = 200, bad_share: float = 0.1) -> list[bytes]:
    """Request bodies, one row each; `bad_share` of them trip the fail10 candidate."""
    rng = np.random.default_rng(11)
    bodies = []
    for i in range(n):
        x1 = -500.0 if i % round(1 / bad_share) == 0 else float(rng.normal())
        data = [[x1, float(rng.normal()), float(rng.normal())]]
        split = {"columns": ["x1", "x2", "x3"], "data": data}
        bodies.append(json.dumps({"dataframe_split": split}).encode())
    return bodies


@dataclass
class Traffic:
    """Single-row requests from `threads` threads until stopped, `max_seconds` or
    `max_requests`, whichever comes first. Loopback only."""

    url: str
    threads: int = 4
    max_seconds: float = 240
    max_requests: int = 200_000
    codes: Counter[int | str] = field(default_factory=Counter)
    answered_by: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.url.startswith("http://127."), "load goes to loopback only"

    def __enter__(self) -> Traffic:
        bodies, deadline = rows(), time.monotonic() + self.max_seconds
        lock = threading.Lock()

        def work(offset: int) -> None:
            i = offset
            while not self._stop.is_set() and time.monotonic() < deadline:
                with lock:
                    if self.sent >= self.max_requests:
                        return
                    self.codes["sent"] += 1
                body = bodies[i % len(bodies)]
                i += self.threads
                request = urllib.request.Request(
                    self.url + "/invocations",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        code: int | str = response.status
                        variant = response.headers.get("x-shipml-variant", "?")
                        with lock:
                            self.answered_by.append((time.monotonic(), variant))
                except urllib.error.HTTPError as exc:
                    code = exc.code
                except OSError as exc:
                    code = type(exc).__name__
                with lock:
                    self.codes[code] += 1

        self._workers = [threading.Thread(target=work, args=(t,)) for t in range(self.threads)]
        for w in self._workers:
            w.start()
        return self

    @property
    def sent(self) -> int:
        return self.codes["sent"]

    def failed(self) -> dict[int | str, int]:
        """Answers other than 200, by status (or exception name)."""
        return {k: v for k, v in self.codes.items() if k not in (200, "sent")}

    def wait_for(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.codes[200] < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.codes[200] >= n, f"the server answered only {self.codes[200]} requests"

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(timeout=60)
