"""`shipml init` and `shipml report`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipml.cli._common import JsonOpt, ProjectOpt, console, emit, errors, load, state

if TYPE_CHECKING:
    from shipml.scaffold.project import InitResult


class Ci(StrEnum):
    github = "github"
    gitlab = "gitlab"
    both = "both"
    none = "none"


def register_commands(app: typer.Typer) -> None:
    @app.command()
    def init(
        directory: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
        data: Annotated[
            Path | None, typer.Option(help="The CSV (or Parquet) to start from.")
        ] = None,
        target: Annotated[str | None, typer.Option(help="The label column.")] = None,
        positive_label: Annotated[
            str | None, typer.Option(help="The target value that is the event to predict.")
        ] = None,
        ci: Annotated[Ci, typer.Option(help="CI pipeline(s) to write.")] = Ci.none,
        only_ci: Annotated[
            bool, typer.Option(help="Only add the --ci pipeline(s) to an existing project.")
        ] = False,
        force: Annotated[bool, typer.Option(help="Overwrite files that exist.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Write a working project from a CSV: shipml.yaml, train.py, tests, expectation suite,
        .gitignore and CI pipelines. Changes nothing in an existing project without --force."""
        from shipml.errors import UsageError
        from shipml.scaffold.project import init_ci, init_project

        kinds = {"github": ["github"], "gitlab": ["gitlab"], "both": ["github", "gitlab"]}
        chosen = kinds.get(ci.value, [])
        with errors(as_json):
            if only_ci:
                result = init_ci(directory, chosen, force=force)  # type: ignore[arg-type]
            elif data is None:
                raise UsageError("pass --data PATH.csv (the data to start from), or --only-ci")
            else:
                result = init_project(
                    directory,
                    data,
                    target=target,
                    positive_label=positive_label,
                    ci=chosen,  # type: ignore[arg-type]
                    force=force,
                    ask=_prompt if sys.stdin.isatty() and not as_json else None,
                )
        emit(as_json, _payload(result), lambda: _say(result))

    @app.command()
    def report(
        markdown: Annotated[
            bool, typer.Option("--markdown", help="Markdown (the default; for CI summaries).")
        ] = True,
        project: ProjectOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """The verdict of every gate of the newest run, as Markdown (CI job summaries, MR notes)."""
        from shipml.report import latest_run
        from shipml.report import markdown as render

        with errors(as_json):
            p = load(project)
            with state(p) as store:
                steps = latest_run(store.steps())
        emit(
            as_json,
            [s.__dict__ for s in steps],
            lambda: print(render(steps, title=f"shipml · {p.name}"), end=""),
        )


def _prompt(question: str, choices: Sequence[str]) -> str:
    from rich.prompt import Prompt

    return Prompt.ask(question, choices=list(choices), console=console(stderr=True))


def _payload(result: InitResult) -> dict[str, object]:
    found = result.detected
    return {
        "root": str(result.root),
        "changed": result.changed,
        "written": result.written,
        "existing": result.existing,
        "target": found.target if found else None,
        "positive_label": found.positive_label if found else None,
        "key": found.key if found else None,
        "notes": found.notes if found else [],
        "snapshot": result.snapshot,
        "expectations": result.expectations,
    }


def _say(result: InitResult) -> None:
    out = console()
    if not result.changed:
        out.print(
            f"{result.root}: nothing changed; these files exist: {', '.join(result.existing)}. "
            f"Pass --force to overwrite them.",
            markup=False,
        )
        return
    for note in result.detected.notes if result.detected else []:
        out.print(f"  {note}", markup=False)
    for rel in result.written:
        out.print(f"wrote {rel}", markup=False)
    if result.snapshot:
        out.print(
            f"first snapshot {result.snapshot}; {result.expectations} expectations suggested "
            f"from it: review them",
            markup=False,
        )
    out.print(f"next: cd {result.root} && shipml run", markup=False)
