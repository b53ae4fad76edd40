"""Registry commands: `registry versions | history | recover`, `lineage`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipml.cli._common import JsonOpt, ProjectOpt, console, emit, errors, for_model, load, state


def register_commands(app: typer.Typer) -> None:
    reg = typer.Typer(
        help="The MLflow Model Registry: versions and alias history.", no_args_is_help=True
    )
    app.add_typer(reg, name="registry")

    @reg.command("versions")
    def versions(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """Every registered version of the project's model, with aliases and tags."""
        from rich.table import Table

        from shipml.registry.models import list_versions

        with errors(as_json):
            p = load(project)
            found = list_versions(p)
        table = Table("version", "aliases", "registration", "snapshot", "git commit", "run")
        for v in found:
            table.add_row(
                str(v.version),
                ",".join(v.aliases),
                v.tags.get("shipml.registration", ""),
                v.tags.get("shipml.snapshot", ""),
                v.tags.get("shipml.git_commit", "")[:10],
                v.run_id,
            )
        emit(as_json, [v.__dict__ for v in found], lambda: console().print(table))

    @reg.command("history")
    def history(
        model: Annotated[str, typer.Argument(help="Registered model name.")],
        project: ProjectOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Which version held each alias, when, set by whom and why."""
        from rich.table import Table

        from shipml.registry.models import alias_history

        with errors(as_json):
            p = for_model(project, model)
            with state(p) as store:
                spans = alias_history(p, store)
        table = Table("alias", "version", "since", "until", "by", "reason")
        for s in spans:
            table.add_row(s.alias, str(s.version), s.since, s.until or "now", s.actor, s.reason)
        emit(as_json, [s.__dict__ for s in spans], lambda: console().print(table))

    @reg.command("recover")
    def recover(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """Finish or mark interrupted registrations, put aliases back in step with the audit
        log, and mark steps whose process died failed (`register`, `deploy` and `promote`
        do this first on their own)."""
        from shipml.registry.recovery import run_recovery

        with errors(as_json):
            p = load(project)
            with state(p) as store:
                done = run_recovery(p, store)
        emit(
            as_json,
            {"repaired": done},
            lambda: console().print(
                "\n".join(done) if done else "nothing to recover", markup=False
            ),
        )

    @app.command()
    def lineage(
        ref: Annotated[str, typer.Argument(help="MODEL:VERSION, e.g. credit:3")],
        project: ProjectOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Trace a model version back to its raw data."""
        from shipml.errors import UsageError
        from shipml.state.lineage import lineage as read_lineage

        with errors(as_json):
            name, _, version = ref.rpartition(":")
            if not name or not version.isdigit():
                raise UsageError(f"expected MODEL:VERSION such as credit:3, got {ref!r}")
            p = for_model(project, name)
            with state(p) as store:
                chain = read_lineage(store, name, int(version))

        def render() -> None:
            out = console()
            for i, link in enumerate(chain):
                arrow = "   " if i == 0 else "-> "
                out.print(f"{arrow}{link.stage:<10} {link.label}  {link.hash or ''}", markup=False)

        emit(as_json, [link.__dict__ for link in chain], render)
