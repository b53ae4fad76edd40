"""Run stages in order, record each as a step run, stop at the first failed gate.

`shipml run` is `run_stages(project, ORDER)`; `shipml train` is `run_stages(project,
["train"])`. The caller (the CLI) passes `on_event` to show progress; this module prints
nothing itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipml.config import Project
from shipml.errors import GateFailed, ShipmlError, UsageError
from shipml.stages import PREFLIGHT, STAGES, Context
from shipml.state.store import StateStore

ORDER = ["ingest", "validate", "test", "train", "evaluate", "register", "build", "deploy"]

Event = Callable[[str, str, str], None]  # (stage, "start" | "done" | "failed", message)


@dataclass
class StepOutcome:
    stage: str
    status: str
    seconds: float
    summary: str
    outputs: dict[str, Any]
    timings: dict[str, float]


@dataclass
class PipelineResult:
    run_id: str
    steps: list[StepOutcome] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    failure: GateFailed | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "steps": [s.__dict__ for s in self.steps],
            "reports": self.reports,
            "failure": None
            if self.failure is None
            else {"stage": self.failure.stage, "reasons": self.failure.reasons},
        }


def run_stages(
    project: Project,
    names: Sequence[str] = ORDER,
    *,
    snapshot_version: int | None = None,
    model_version: int | None = None,
    on_event: Event | None = None,
    store: StateStore | None = None,
) -> PipelineResult:
    """Run `names` in order; a GateFailed stops the run and is returned, not raised.

    Any other ShipmlError (bad config, missing snapshot, a taken port found by a stage's
    pre-flight check before the first stage) propagates: it is not a verdict on the model but
    a problem the user must fix before a verdict is possible.
    """
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise UsageError(f"unknown stage(s) {unknown}; stages are: {', '.join(ORDER)}")
    notify = on_event or (lambda *_: None)
    own_store = store is None
    store = store or StateStore(project.state_url)
    ctx = Context(
        project,
        store,
        str(uuid.uuid4()),
        snapshot_version=snapshot_version,
        model_version=model_version,
    )
    result = PipelineResult(ctx.run_id)
    start = time.perf_counter()
    try:
        for name in names:
            if name in PREFLIGHT:
                PREFLIGHT[name](ctx)  # before any stage: a run that cannot finish does no work
        for name in names:
            notify(name, "start", "")
            t0 = time.perf_counter()
            try:
                with store.step(ctx.run_id, name, {}) as rec:
                    summary = STAGES[name](ctx, rec)
            except GateFailed as exc:
                result.failure = exc
                summary = exc.reasons[0] if exc.reasons else "gate failed"
            except ShipmlError:
                notify(name, "error", "stopped: the error below needs fixing first")
                raise
            seconds = time.perf_counter() - t0
            status = "failed" if result.failure else "done"
            result.steps.append(
                StepOutcome(name, status, seconds, summary, rec.outputs, rec.timings)
            )
            notify(name, status, summary)
            if result.failure:
                break
    finally:
        result.reports = dict(ctx.reports)
        result.seconds = time.perf_counter() - start
        if own_store:
            store.close()
    return result
