"""One registration in a process of its own, as the `register` stage does it (a step row,
then `registry.models.register`). Run by the crash and concurrency tests:

    python _register_process.py <project root> <model uri> <run tag>

SHIPML_TEST_CRASH_AT (shipml's test seam) kills it at a named point. For the race, two
roles, both arranged at MLflow's boundary so they work on the old code and the new alike:
- READY_DIR: touch READY_DIR/<run tag> when about to register, then wait (bounded) until the
  registry holds a version, so that the slow registrar's version is the first.
- SLOW_AFTER_CREATE=<k>: this one's create_model_version returns only once k registrars are
  ready and k `model.registered` events are in the log, or 8 s after they were all ready.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
import uuid
from pathlib import Path

DEADLINE_S = 300


def count(db: Path, sql: str) -> int:
    """A plain read (a shared lock): it works while another connection holds the write lock."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return int(c.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


def wait_until(condition, limit_s: float) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit_s
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)


def main(root: str, model_uri: str, run: str) -> None:
    from mlflow import MlflowClient

    from shipml.config import load_project
    from shipml.registry.models import register
    from shipml.state.store import StateStore

    project = load_project(root, env={})
    state_db, mlflow_db = project.state_dir / "state.db", project.state_dir / "mlflow.db"
    ready = Path(os.environ["READY_DIR"]) if "READY_DIR" in os.environ else None
    if "SLOW_AFTER_CREATE" in os.environ and ready is not None:
        k, create = int(os.environ["SLOW_AFTER_CREATE"]), MlflowClient.create_model_version
        events = "select count(*) from audit_events where action = 'model.registered'"

        def slow_create(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            mv = create(self, *args, **kwargs)
            wait_until(lambda: len(list(ready.iterdir())) >= k, DEADLINE_S)
            wait_until(lambda: count(state_db, events) >= k, 8)
            return mv

        MlflowClient.create_model_version = slow_create  # type: ignore[method-assign]
    store = StateStore(project.state_url)
    with store.step(str(uuid.uuid4()), "register", {}) as rec:
        if ready is not None and "SLOW_AFTER_CREATE" not in os.environ:
            (ready / run).touch()
            versions = "select count(*) from model_versions"
            wait_until(lambda: count(mlflow_db, versions) >= 1, DEADLINE_S)
        tags = {"shipml.run_id": run, "shipml.snapshot": "d@0"}
        mv = register(project, store, run_id="", model_uri=model_uri, tags=tags)
        rec.outputs = {"version": mv.version}
    print(mv.version)


if __name__ == "__main__":
    main(*sys.argv[1:4])
