"""`shipml run` and one command per stage: ingest, validate, test, train, evaluate, register."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipml.cli._common import JsonOpt, ProjectOpt, console, emit, errors, load

if TYPE_CHECKING:
    from shipml.pipeline import PipelineResult

SnapshotOpt = Annotated[
    int | None, typer.Option("--snapshot", help="Snapshot version to use; default: the latest.")
]


def register_commands(app: typer.Typer) -> None:
    @app.command()
    def run(
        project: ProjectOpt = Path("."),
        snapshot: SnapshotOpt = None,
        stages: Annotated[
            str | None,
            typer.Option(
                help="Only these stages, comma-separated (e.g. ingest,validate), run in "
                "pipeline order as one run: what a CI job runs."
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Run all stages; stop at the first failed gate.

        The stages, in order: ingest, validate, test, train, evaluate, register, build, deploy
        (the first champion is served locally; later candidates wait for `shipml deploy`).
        """
        from shipml.pipeline import ORDER

        names = ORDER
        if stages is not None:
            chosen = [s.strip() for s in stages.split(",") if s.strip()]
            order = {name: i for i, name in enumerate(ORDER)}
            names = sorted(chosen, key=lambda s: order.get(s, len(ORDER)))
        _run(project, names, snapshot, as_json)

    for stage, doc in [
        ("ingest", "Snapshot the data source (nothing new if unchanged)."),
        ("validate", "Run the expectation suite on a snapshot."),
        ("test", "Run the project's own pytest suite."),
        ("train", "Train on a snapshot inside an MLflow run."),
        ("evaluate", "Check the newest trained model against every gate."),
        ("register", "Register the newest evaluated model as candidate."),
    ]:
        app.command(name=stage, help=doc)(_stage_command(stage))


def _stage_command(stage: str) -> Any:
    def command(
        project: ProjectOpt = Path("."),
        snapshot: SnapshotOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        _run(project, [stage], snapshot, as_json)

    command.__name__ = stage
    return command


def _run(project_path: Path, names: list[str], snapshot: int | None, as_json: bool) -> None:
    from shipml.pipeline import run_stages

    with errors(as_json):
        project = load(project_path)
        progress = _Progress(enabled=not as_json)
        result = run_stages(project, names, snapshot_version=snapshot, on_event=progress)
    from shipml._urls import redact

    tracking = {"uri": redact(project.tracking_uri), "from": project.tracking_uri_source}
    emit(as_json, {**result.to_dict(), "tracking": tracking}, lambda: _summary(result, tracking))
    if not result.ok:
        raise typer.Exit(1)


class _Progress:
    """One line per stage on stderr: a spinner while it runs, then its verdict and time."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.err = console(stderr=True)
        self.status: Any = None
        self.t0 = 0.0

    def __call__(self, stage: str, event: str, message: str) -> None:
        if not self.enabled:
            return
        from rich.text import Text

        if event == "start":
            self.t0 = time.perf_counter()
            self.status = self.err.status(f"{stage}…")
            self.status.start()
            return
        if self.status is not None:
            self.status.stop()
        mark, style = ("✓", "green") if event == "done" else ("✗", "bold red")
        seconds = time.perf_counter() - self.t0
        self.err.print(Text.assemble((f"{mark} {stage:<9}", style), f"{seconds:6.1f}s  ", message))


def _summary(result: PipelineResult, tracking: dict[str, str]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    table = Table(title=f"shipml run {result.run_id[:8]} ({result.seconds:.1f} s)")
    table.add_column("stage")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("details", overflow="fold")
    gates: dict[str, str] = {}
    details: dict[str, str] = {}
    for step in result.steps:
        o = step.outputs
        if step.stage == "ingest" and o:
            state = "new" if o["created"] else "unchanged"
            detail = f"snapshot {o['snapshot']} ({o['rows']} rows, {state})\n{o['content_hash']}"
        elif step.stage == "evaluate" and o.get("metrics"):
            detail = "  ".join(f"{k}={v:.3f}" for k, v in o["metrics"].items() if v is not None)
            gates, details = o.get("gates", {}), o.get("gate_details", {})
        elif step.stage == "register" and o:
            detail = f"{o['model']} version {o['version']}, alias '{o['alias']}'"
        else:
            detail = step.summary
        verdict = Text("ok", "green") if step.status == "done" else Text("FAILED", "bold red")
        table.add_row(step.stage, verdict, f"{step.seconds:.1f}", detail)
    out.print(table)
    if gates:
        styles = {"pass": "green", "fail": "bold red", "skip": "yellow"}
        gate_table = Table(title="evaluation gates")
        gate_table.add_column("gate")
        gate_table.add_column("verdict")
        gate_table.add_column("measured", overflow="fold")
        for name, verdict_text in gates.items():
            gate_table.add_row(
                name, Text(verdict_text, styles[verdict_text]), details.get(name, "")
            )
        out.print(gate_table)
    for name, path in result.reports.items():
        out.print(f"{name} report: {path}", markup=False)
    out.print(f"MLflow tracking: {tracking['uri']} (from {tracking['from']})", markup=False)
    served = next((s.outputs for s in result.steps if s.stage == "deploy" and s.outputs), {})
    if served.get("url"):
        out.print(f"\nserving at {served['url']}; try it:\n{served['curl']}", markup=False)
        if served.get("waiting"):
            out.print(
                f"candidate version {served['waiting']} is registered; release it with "
                f"`shipml deploy` (shadow, canary steps, analysis on live traffic)",
                markup=False,
            )
        out.print("stop the server with `shipml down`", markup=False)
    if result.failure is not None:
        err = console(stderr=True)
        err.print(Text(f"{result.failure.stage} gate failed:", "bold red"))
        for reason in result.failure.reasons:
            err.print(f"  - {reason}", markup=False)
