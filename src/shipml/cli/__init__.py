"""The `shipml` command line: thin Typer commands, one module per group."""

from __future__ import annotations

import typer

from shipml.cli import build, data, deploy, pipeline, project, registry, scaffold, serve

app = typer.Typer(
    name="shipml",
    help="CI/CD for machine-learning models on tabular data: snapshots, validation, training, "
    "gates, registry. Exit codes: 0 success, 1 a gate failed, 2 usage or configuration error.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold secrets
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from shipml import __version__

        typer.echo(f"shipml {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """CI/CD for machine-learning models on tabular data."""


pipeline.register_commands(app)
data.register_commands(app)
registry.register_commands(app)
project.register_commands(app)
serve.register_commands(app)
build.register_commands(app)
deploy.register_commands(app)
scaffold.register_commands(app)


# The top-level module of each dependency an extra brings (pyproject.toml), and that extra.
_EXTRAS = {
    **dict.fromkeys(
        ("numpy", "pandas", "pyarrow", "sklearn", "skops", "orjson", "uvicorn",
         "prometheus_client"),
        "serve",
    ),
    **dict.fromkeys(
        ("sqlalchemy", "deltalake", "mlflow", "great_expectations", "fairlearn", "matplotlib",
         "jinja2"),
        "pipeline",
    ),
    "psycopg": "postgres",
}  # fmt: skip


def main() -> None:
    try:
        app(standalone_mode=True)
    except ModuleNotFoundError as exc:  # an extra that is not installed: say which
        top = (exc.name or "").split(".")[0]
        if top not in _EXTRAS:
            raise
        import sys

        sys.stderr.write(
            f"error: this command needs {top!r}, which comes with the {_EXTRAS[top]!r} extra; "
            f"install it with: pip install 'shipml[{_EXTRAS[top]}]'\n"
        )
        raise SystemExit(2) from None
