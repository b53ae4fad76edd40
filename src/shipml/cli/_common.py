"""What every command shares: the --project and --json options, output, and error handling.

Commands are thin: parse, call the library, render. Heavy modules (pandas, MLflow, GX) are
imported inside the commands so `shipml --help` stays instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from shipml.config import Project
    from shipml.state.store import StateStore

ProjectOpt = Annotated[
    Path,
    typer.Option(
        "--project", "-p", help="Project folder (holding shipml.yaml) or the file itself."
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (for CI).")
]


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def load(project: Path) -> Project:
    from shipml.config import load_project

    return load_project(project)


def for_model(project: Path, model: str) -> Project:
    """The project, checked to own `model` (commands that name the model take it first)."""
    from shipml.errors import UsageError

    p = load(project)
    if model != p.model_name:
        raise UsageError(
            f"this project's model is {p.model_name!r}, not {model!r}; "
            f"pass --project for the project that owns {model!r}"
        )
    return p


@contextmanager
def state(project: Project) -> Iterator[StateStore]:
    from shipml.state.store import StateStore

    store = StateStore(project.state_url)
    try:
        yield store
    finally:
        store.close()


def emit(as_json: bool, payload: Any, render: Callable[[], None]) -> None:
    """Print `payload` as JSON, or call `render` for people."""
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        render()


def fail(as_json: bool, message: str, code: int) -> None:
    """An expected error: one clear message (no traceback), and the documented exit code."""
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
    else:
        from rich.text import Text

        console(stderr=True).print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(code)


@contextmanager
def errors(as_json: bool) -> Iterator[None]:
    """Turn shipml's expected errors into their exit code and a one-line message."""
    from shipml.errors import ShipmlError

    try:
        yield
    except ShipmlError as exc:
        fail(as_json, str(exc), exc.exit_code)
