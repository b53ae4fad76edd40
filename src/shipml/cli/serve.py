"""`shipml serve`: the inference server on its own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from shipml.cli._common import ProjectOpt, console, errors


def register_commands(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: Annotated[
            str,
            typer.Argument(
                help="models:/NAME@ALIAS or models:/NAME/VERSION (verified against its "
                "registration), or a model folder with --record or --trust-folder."
            ),
        ],
        project: ProjectOpt = Path("."),
        host: Annotated[str | None, typer.Option(help="Bind address (serve.host).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (serve.port).")] = None,
        workers: Annotated[
            int | None, typer.Option(help="Worker processes (serve.workers).")
        ] = None,
        model_name: Annotated[
            str | None,
            typer.Option(help="Name a model folder is served under (default: from MLmodel)."),
        ] = None,
        model_version: Annotated[
            str | None,
            typer.Option(help="Version label of a model folder (default: local)."),
        ] = None,
        record: Annotated[
            Path | None,
            typer.Option(
                help="Verify the folder against this registration record (model.record.json, "
                "written by shipml build) before loading it."
            ),
        ] = None,
        trust_folder: Annotated[
            bool,
            typer.Option(
                "--trust-folder",
                help="Serve a model folder as it is, unverified: its code runs. For local "
                "development with a folder you trust.",
            ),
        ] = False,
    ) -> None:
        """Serve a model over HTTP (MLflow and Open Inference Protocol)."""
        from shipml._ports import claim
        from shipml.config import CONFIG_FILE, load_project
        from shipml.errors import UsageError
        from shipml.serve.server import build_spec, run

        if trust_folder and record is None and not model.startswith("models:/"):
            console(stderr=True).print(
                f"trusting {model} as it is: its files are not verified against a "
                f"registration, and its code runs (--trust-folder)",
                markup=False,
            )
        with errors(False):
            found = project / CONFIG_FILE if project.is_dir() else project
            p = load_project(project) if found.exists() else None
            cfg = p.config.serve if p else None
            host = host or (cfg.host if cfg else "127.0.0.1")
            port = port if port is not None else (cfg.port if cfg else 8080)
            fix = "stop that process, or pass --port or set serve.port (0 picks a free port)"
            sock = claim(host, port, fix=fix)  # before anything loads or is announced
            spec = build_spec(model, p, record_file=record, trust_folder=trust_folder)
            if (model_name or model_version) and not spec.variants[0].trusted:
                raise UsageError(
                    "--model-name and --model-version label a folder served with "
                    "--trust-folder; a registered version is named by its registration"
                )
        if model_name or model_version:
            first = spec.variants[0]
            named = replace(
                first,
                model_name=model_name or first.model_name,
                version=model_version or first.version,
            )
            spec = replace(spec, variants=[named, *spec.variants[1:]])
        workers = workers or (cfg.workers if cfg else 1)
        variant = spec.variants[0]
        console(stderr=True).print(
            f"serving {variant.model_name} version {variant.version} on "
            f"http://{host}:{sock.getsockname()[1]} "
            f"({workers} worker{'s' if workers > 1 else ''}); admin API "
            f"{'on' if spec.admin_token else 'off'}",
            markup=False,
        )
        run(spec, sock=sock, workers=workers)
