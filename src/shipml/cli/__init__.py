"""The `shipml` command line: thin Typer commands, one module per group."""

from __future__ import annotations

import typer

from shipml.cli import data, deploy, pipeline, project, registry, serve

app = typer.Typer(
    name="shipml",
    help="CI/CD for machine-learning models on tabular data: snapshots, validation, training, "
    "gates, registry. Exit codes: 0 success, 1 a gate failed, 2 usage or configuration error.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold secrets
    add_completion=False,
    rich_markup_mode=None,
)
pipeline.register_commands(app)
data.register_commands(app)
registry.register_commands(app)
project.register_commands(app)
serve.register_commands(app)
deploy.register_commands(app)


def main() -> None:
    app()
