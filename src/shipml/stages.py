"""The pipeline's stages: each takes the run's Context and fills in one step record.

Every stage has one shape, `stage(ctx, rec) -> summary line`: it resolves its inputs (from the
Context, or from the state store when run on its own), records them in `rec.inputs`, does the
work through the area module that owns it, records `rec.outputs` and `rec.timings` (seconds
spent inside the libraries, so shipml's own overhead is measurable), and raises GateFailed
when a gate says no. `pipeline.run_stages` records each call as a step run, after every
`PREFLIGHT` check of the run's stages (a run whose deploy port is taken does no work).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipml._libs import preload
from shipml._urls import redact
from shipml.config import Project
from shipml.errors import GateFailed, StateError
from shipml.state.store import StateStore, StepRecord

if TYPE_CHECKING:
    import pandas as pd

    from shipml.data.snapshots import Snapshot
    from shipml.evaluate.gates import EvaluationResult
    from shipml.train.run import TrainedModel


@dataclass
class Context:
    """What one pipeline run has produced so far; stages run alone resolve the rest from state."""

    project: Project
    store: StateStore
    run_id: str
    snapshot_version: int | None = None  # pin a snapshot (e.g. `--snapshot 3`); latest if None
    model_version: int | None = None  # build this registered version; the candidate if None
    snapshot: Snapshot | None = None
    trained: TrainedModel | None = None
    evaluation: EvaluationResult | None = None
    reports: dict[str, str] = field(default_factory=dict)

    def snapshots(self) -> Any:
        from shipml.data.snapshots import SnapshotStore

        return SnapshotStore(self.project.snapshot_root)

    def current_snapshot(self) -> Snapshot:
        if self.snapshot is None:
            self.snapshot = self.snapshots().get(self.project.dataset, self.snapshot_version)
        return self.snapshot

    def frame(self) -> pd.DataFrame:
        snap = self.current_snapshot()
        return self.snapshots().load(snap.dataset, snap.version)


def label(snap: Snapshot) -> str:
    return f"{snap.dataset}@{snap.version}"


def ingest(ctx: Context, rec: StepRecord) -> str:
    from shipml.data.sources import read_source

    preload("pandas", "pyarrow", "deltalake")
    cfg, p = ctx.project.config.data, ctx.project
    source = cfg.source if cfg.format == "sql" else str(p.path(cfg.source))
    rec.inputs = {"source": redact(source), "format": cfg.format, "query": cfg.query}
    with timed(rec, "pandas"):
        raw = read_source(source, format=cfg.format, query=cfg.query)
    with timed(rec, "deltalake"):
        result = ctx.snapshots().ingest(p.dataset, raw)
    ctx.snapshot = snap = result.snapshot
    rec.outputs = {
        "snapshot": label(snap),
        "dataset": snap.dataset,
        "version": snap.version,
        "source_hash": snap.source_hash,
        "content_hash": snap.content_hash,
        "rows": snap.rows,
        "created": result.created,
    }
    if result.created:
        ctx.store.audit("snapshot.created", label(snap), rec.outputs)
    verb = "new snapshot" if result.created else "unchanged, reusing snapshot"
    return f"{verb} {label(snap)} ({snap.rows} rows, {snap.content_hash[:19]})"


def validate(ctx: Context, rec: StepRecord) -> str:
    from shipml._hashing import sha256_file
    from shipml.validate.run import validate as run_suite

    p = ctx.project
    snap = ctx.current_snapshot()
    suite = p.path(p.config.validation.suite)
    rec.inputs = {
        "snapshot": label(snap),
        "content_hash": snap.content_hash,
        "suite": p.config.validation.suite,
        "suite_hash": sha256_file(suite) if suite.exists() else None,
    }
    with timed(rec, "deltalake"):
        frame = ctx.frame()
    report = run_suite(frame, suite, docs_dir=p.validation_docs_dir, label=label(snap))
    rec.outputs = {
        "success": report.success,
        "evaluated": report.evaluated,
        "failed": len(report.failures),
        "docs": str(report.docs_path),
    }
    rec.timings["great_expectations"] = report.gx_seconds
    ctx.reports["validation"] = str(report.docs_path)
    if not report.success:
        reasons = [f.reason for f in report.failures]
        raise GateFailed("validation", [*reasons, f"report: {report.docs_path}"])
    return f"{report.evaluated} expectations passed on {label(snap)}"


def test(ctx: Context, rec: StepRecord) -> str:
    from shipml.project_tests import run_project_tests

    cfg = ctx.project.config.tests
    rec.inputs = {"path": cfg.path, "args": cfg.args}
    if not cfg.enabled:
        rec.outputs = {"skipped": True}
        return "skipped (tests.enabled is false)"
    report = run_project_tests(ctx.project)
    rec.outputs = {
        "passed": report.passed,
        "exit_code": report.exit_code,
        "summary": report.summary,
    }
    rec.timings["pytest"] = report.seconds
    if not report.passed:
        raise GateFailed("tests", [f"pytest: {report.summary}", report.output_tail])
    return report.summary


def train(ctx: Context, rec: StepRecord) -> str:
    from shipml.train.run import SnapshotRef, train_model

    p = ctx.project
    snap = ctx.current_snapshot()
    rec.inputs = {
        "snapshot": label(snap),
        "content_hash": snap.content_hash,
        "entrypoint": p.config.training.entrypoint,
        "params": p.config.training.params,
    }
    ref = SnapshotRef(snap.dataset, snap.version, snap.content_hash, p.snapshot_root)
    with timed(rec, "deltalake"):
        frame = ctx.frame()
    ctx.trained = trained = train_model(p, frame, ref)
    rec.outputs = {
        "mlflow_run_id": trained.run_id,
        "model_uri": trained.model_uri,
        "git_commit": trained.git["commit"],
        "git_dirty": trained.git["dirty"],
    }
    rec.timings.update(trained.timings)
    return f"MLflow run {trained.run_id} on {label(snap)} (fit {trained.timings['user_fit']:.1f} s)"


def evaluate(ctx: Context, rec: StepRecord) -> str:
    from shipml.evaluate.gates import evaluate as run_gates
    from shipml.evaluate.metrics import encode_target, positive_proba
    from shipml.evaluate.report import write_report
    from shipml.registry.models import load_model, version_for_alias

    preload("mlflow", "sklearn.metrics", "fairlearn.metrics", "matplotlib.figure")
    p = ctx.project
    with timed(rec, "mlflow"):
        trained = ctx.trained or _last_trained(ctx)
    champion_alias = p.config.registry.champion_alias
    split, cfg = trained.split, p.config.evaluation
    with timed(rec, "mlflow"):
        champion_version = version_for_alias(p, champion_alias)
        champion = load_model(p, champion_alias) if cfg.champion.enabled else None
    rec.inputs = {"mlflow_run_id": trained.run_id, "champion": champion_version}
    sensitive = split.test[cfg.fairness.sensitive] if cfg.fairness.sensitive else None
    with timed(rec, "gates"):
        result = run_gates(
            trained.model,
            split.X_test,
            split.y_test,
            cfg,
            positive_label=split.positive_label,
            sensitive=sensitive,
            champion=champion,
            seed=p.config.training.seed,
        )
        proba = positive_proba(trained.model, split.X_test, split.positive_label)
        y = encode_target(split.y_test, trained.model, split.positive_label)
    out = p.evaluation_reports_dir / trained.run_id
    with timed(rec, "matplotlib"):
        title = f"{p.model_name}: MLflow run {trained.run_id}"
        json_path, html_path = write_report(result, y, proba, out, title=title)
    ctx.evaluation = result
    ctx.reports["evaluation"] = str(html_path)
    with timed(rec, "mlflow"):
        _log_evaluation(p, trained.run_id, result.metrics, json_path, html_path)
    rec.outputs = {"passed": result.passed, "metrics": result.metrics, "report": str(html_path)}
    rec.outputs["gates"] = {g.name: _verdict(g) for g in result.gates}
    rec.outputs["gate_details"] = {g.name: g.detail for g in result.gates}
    if not result.passed:
        raise GateFailed("evaluation", [g.detail for g in result.gates if not g.passed])
    metric = p.config.evaluation.champion.metric
    value = result.metrics.get(metric, float("nan"))
    checked = [g for g in result.gates if not g.skipped]
    skipped = len(result.gates) - len(checked)
    return f"{len(checked)} gates passed, {skipped} skipped ({metric} {value:.3f})"


def register(ctx: Context, rec: StepRecord) -> str:
    from shipml.registry.manifest import fingerprint
    from shipml.registry.models import register as register_version

    preload("mlflow")
    p = ctx.project
    with timed(rec, "mlflow"):
        trained = ctx.trained or _last_trained(ctx)
    rec.inputs = {"mlflow_run_id": trained.run_id}
    evaluation = _evaluation_of(ctx, trained.run_id)
    snap = ctx.current_snapshot()
    with timed(rec, "mlflow"):
        # every later load (serve, deploy, build) checks the files against this record
        files = fingerprint(p, trained.model_uri, trained.run_id)
        mv = register_version(
            p,
            ctx.store,
            run_id=trained.run_id,
            model_uri=trained.model_uri,
            tags={
                "shipml.snapshot": label(snap),
                "shipml.snapshot_hash": snap.content_hash,
                "shipml.source_hash": snap.source_hash,
                "shipml.validation": "passed",
                "shipml.gates": ",".join(f"{k}={v}" for k, v in evaluation.items()),
                "shipml.git_commit": trained.git["commit"],
                "shipml.run_id": ctx.run_id,
                **files,
            },
        )
    alias = p.config.registry.candidate_alias
    rec.outputs = {
        "model": mv.name,
        "version": mv.version,
        "alias": alias,
        "model_uri": trained.model_uri,
    }
    return f"{mv.name} version {mv.version}, alias '{alias}'"


def build(ctx: Context, rec: StepRecord) -> str:
    """The serving image of the candidate (or `ctx.model_version`), proven to start and to
    predict like the model (infra validation, a gate). Skipped when no builder is found."""
    from shipml.build.image import execute, find_builder, prepare

    p = ctx.project
    rec.inputs = {"builder": p.config.build.builder}
    builder, why = find_builder(p)
    if builder is None:
        rec.outputs = {"skipped": True, "reason": why}
        if p.config.build.builder == "none":
            return "skipped (build.builder: none)"
        return f"skipped: {why}"
    plan = prepare(p, builder, ctx.model_version)
    rec.inputs = plan.inputs()
    rec.timings.update(plan.timings)
    result = execute(plan, ctx.store)
    rec.outputs = result.outputs
    rec.timings.update(result.timings)
    return result.summary()


def deploy(ctx: Context, rec: StepRecord) -> str:
    """Serve the first champion locally, or make sure the serving release is up. A later
    candidate is not released here: a canary is judged on live traffic (`shipml deploy`)."""
    p = ctx.project
    rec.inputs = {"in_run": p.config.deploy.in_run}
    if p.config.deploy.in_run == "never":
        rec.outputs = {"skipped": True}
        return "skipped (deploy.in_run: never); release with `shipml deploy`"
    from shipml.deploy.controller import Controller
    from shipml.deploy.local import LocalTarget, curl_example
    from shipml.registry.models import version_for_alias

    target = LocalTarget(p)
    with timed(rec, "serve"):
        serving = Controller(p, ctx.store, target).ensure_serving()
    status = target.status()
    candidate = version_for_alias(p, p.config.registry.candidate_alias)
    folder = p.state_dir / "serve" / "models" / p.model_name / str(serving.version)
    rec.outputs = {
        "release": serving.id,
        "version": serving.version,
        "url": status.url,
        "curl": curl_example(folder, status.url or ""),
        "waiting": candidate if candidate != serving.version else None,
    }
    waiting = f"; candidate {candidate} waits for `shipml deploy`" if rec.outputs["waiting"] else ""
    return (
        f"{p.model_name}:{serving.version} serves at {status.url} (release {serving.id}){waiting}"
    )


def deploy_preflight(ctx: Context) -> None:
    """A run that will start the server finds its port free before its first stage."""
    from shipml.deploy.local import LocalTarget

    if ctx.project.config.deploy.in_run != "never":
        LocalTarget(ctx.project).preflight()


PREFLIGHT: dict[str, Callable[[Context], None]] = {"deploy": deploy_preflight}
STAGES: dict[str, Callable[[Context, StepRecord], str]] = {
    "ingest": ingest,
    "validate": validate,
    "test": test,
    "train": train,
    "evaluate": evaluate,
    "register": register,
    "build": build,
    "deploy": deploy,
}


@contextmanager
def timed(rec: StepRecord, key: str) -> Iterator[None]:
    """Add the block's wall time to `rec.timings[key]`: time spent inside a library.

    Keys name where the time went: pandas, deltalake, great_expectations, pytest (the
    project's tests), user_fit, mlflow, gates (the model's predictions and the metric
    libraries), matplotlib, serve (starting the server and waiting until it is ready), pip
    (resolving the image's wheels), builder (building the image), smoke (infra validation).
    Imports happen before these blocks (`preload`), so the timings
    measure work and `benchmarks/pipeline` can tell shipml's own overhead from the rest.
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        rec.timings[key] = rec.timings.get(key, 0.0) + time.perf_counter() - start


def _last_trained(ctx: Context) -> TrainedModel:
    """The newest successful training, rebuilt from state when `evaluate`/`register` run alone."""
    from shipml._libs import mlflow_client
    from shipml.train.run import TrainedModel, split_frame

    steps = ctx.store.steps(stage="train")
    done = [s for s in steps if s.status == "succeeded"]
    if not done:
        raise StateError("no trained model is recorded yet; run `shipml train` first")
    step = done[-1]
    dataset, _, version = step.inputs["snapshot"].rpartition("@")
    ctx.snapshot = ctx.snapshots().get(dataset, int(version))
    mlflow_client(ctx.project.tracking_uri)
    import mlflow

    model = mlflow.sklearn.load_model(step.outputs["model_uri"])
    split = split_frame(ctx.project, ctx.frame())
    git = {"commit": step.outputs.get("git_commit"), "dirty": step.outputs.get("git_dirty")}
    ctx.trained = TrainedModel(
        step.outputs["mlflow_run_id"], step.outputs["model_uri"], model, split, git
    )
    return ctx.trained


def _verdict(gate: Any) -> str:
    return "skip" if gate.skipped else "pass" if gate.passed else "fail"


def _evaluation_of(ctx: Context, run_id: str) -> dict[str, str]:
    """Gate verdicts of the newest evaluation of `run_id`; refuses to register without a pass."""
    if ctx.evaluation is not None:
        return {g.name: _verdict(g) for g in ctx.evaluation.gates}
    evals = [
        s for s in ctx.store.steps(stage="evaluate") if s.inputs.get("mlflow_run_id") == run_id
    ]
    if not evals or evals[-1].status != "succeeded":
        raise GateFailed(
            "register",
            [f"MLflow run {run_id} has no passing evaluation; run `shipml evaluate` first"],
        )
    return dict(evals[-1].outputs.get("gates", {}))


def _log_evaluation(project: Project, run_id: str, metrics: dict[str, float], *files: Any) -> None:
    from shipml._libs import mlflow_client

    client = mlflow_client(project.tracking_uri)
    for key, value in metrics.items():
        client.log_metric(run_id, f"test_{key}", float(value))
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path="evaluation")
