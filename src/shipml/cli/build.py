"""`shipml build`: the serving image of a registered model version, or its Dockerfile."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipml.cli._common import JsonOpt, ProjectOpt, console, emit, errors, load

if TYPE_CHECKING:
    from shipml.pipeline import PipelineResult


def register_commands(app: typer.Typer) -> None:
    @app.command()
    def build(
        version: Annotated[
            int | None, typer.Option(help="The registered version (default: the candidate).")
        ] = None,
        eject: Annotated[
            Path | None,
            typer.Option(
                help="Only write the Dockerfile shipml renders to this path, for you to own "
                "(then set build.dockerfile to it)."
            ),
        ] = None,
        force: Annotated[bool, typer.Option(help="Let --eject overwrite a file.")] = False,
        project: ProjectOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Build the model's OCI image, prove it starts and predicts, push it if configured."""
        from shipml.build.image import eject as eject_dockerfile
        from shipml.build.image import find_builder
        from shipml.errors import BuildError
        from shipml.pipeline import run_stages

        with errors(as_json):
            p = load(project)
            if eject is not None:
                path = eject_dockerfile(p, p.path(str(eject)), force=force)
                emit(as_json, {"dockerfile": str(path)}, lambda: _ejected(p.root, path))
                return
            builder, why = find_builder(p)
            if builder is None:
                raise BuildError(f"no image builder can run here ({why}); install docker, "
                                 f"podman or buildah, or name one in build.builder")  # fmt: skip
            progress = _Progress(enabled=not as_json)
            result = run_stages(p, ["build"], model_version=version, on_event=progress)
        emit(as_json, result.to_dict(), lambda: _summary(result))
        if not result.ok:
            raise typer.Exit(1)


class _Progress:
    """A spinner on stderr while the build runs, then its verdict and time."""

    def __init__(self, enabled: bool) -> None:
        self.err = console(stderr=True) if enabled else None
        self.status: Any = None
        self.t0 = 0.0

    def __call__(self, stage: str, event: str, message: str) -> None:
        if self.err is None:
            return
        if event == "start":
            self.t0 = time.perf_counter()
            self.status = self.err.status(
                "building: model and wheels, image, SBOM, infra validation…"
            )
            self.status.start()
            return
        if self.status is not None:
            self.status.stop()
        mark = "✓" if event == "done" else "✗"
        seconds = time.perf_counter() - self.t0
        self.err.print(f"{mark} {stage} {seconds:6.1f}s  {message}", markup=False)


def _summary(result: PipelineResult) -> None:
    out = console()
    [step] = result.steps
    o = step.outputs
    if result.failure is not None:
        err = console(stderr=True)
        err.print(f"{result.failure.stage} gate failed:", style="bold red")
        for reason in result.failure.reasons:
            err.print(f"  - {reason}", markup=False)
        return
    rows = [
        ("image", " ".join(o["tags"])),
        ("image id", o["image_id"]),
        ("digest", o.get("digest") or "-"),
        ("size", f"{o['size'] / 1e6:.1f} MB"),
        ("build time", f"{o['build_s']:.1f} s"),
        ("SBOM", f"{o['sbom']} ({o['sbom_components']} components, CycloneDX)"),
    ]
    smoke = o.get("smoke")
    if smoke:
        rows.append(
            (
                "infra validation",
                f"ready in {smoke['ready_s']:.1f} s; {smoke['rows']} predictions equal to "
                f"the in-process ones (max |diff| {smoke['max_abs_diff']:.2g})",
            )
        )
    for ref, digest in (o.get("pushed") or {}).items():
        rows.append(("pushed", f"{ref}@{digest}"))
    for key, value in rows:
        out.print(f"{key:>17}  {value}", markup=False)


def _ejected(root: Path, path: Path) -> None:
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    console().print(
        f"wrote {path}; it is yours now. To build with it, add to shipml.yaml:\n"
        f"  build:\n    dockerfile: {shown}\n"
        f"`shipml build` still assembles the context it expects (see its header).",
        markup=False,
    )
