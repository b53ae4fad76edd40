"""Project-wide commands: `config show | reference | schema`, `audit verify | log`."""

from __future__ import annotations

from pathlib import Path

import typer

from shipml.cli._common import JsonOpt, ProjectOpt, console, emit, errors, load, state


def register_commands(app: typer.Typer) -> None:
    config_app = typer.Typer(help="The project's configuration.", no_args_is_help=True)
    audit_app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)
    app.add_typer(config_app, name="config")
    app.add_typer(audit_app, name="audit")

    @config_app.command("show")
    def config_show(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """Print the effective configuration: shipml.yaml, SHIPML_* overrides and defaults."""
        import yaml

        from shipml._urls import redact

        with errors(as_json):
            p = load(project)
        data = p.config.model_dump(mode="json")
        derived = {
            "root": str(p.root),
            "state_url": p.state_url,
            "tracking_uri": redact(p.tracking_uri),
            "tracking_uri_from": p.tracking_uri_source,
            "snapshot_root": p.snapshot_root,
            "model_name": p.model_name,
        }
        emit(
            as_json,
            {"config": data, "derived": derived},
            lambda: console().print(
                yaml.safe_dump(data, sort_keys=False)
                + "# derived\n"
                + yaml.safe_dump(derived, sort_keys=False),
                markup=False,
            ),
        )

    @config_app.command("reference")
    def config_reference(
        write: Path | None = typer.Option(
            None, help="Refresh the generated section of this Markdown file (e.g. README.md)."
        ),
    ) -> None:
        """Print the configuration reference generated from the config model."""
        from shipml.config.reference import render, update_file

        if write is None:
            console().print(render(), markup=False)
        else:
            changed = update_file(write)
            console().print(f"{write}: {'updated' if changed else 'already current'}", markup=False)

    @config_app.command("schema")
    def config_schema() -> None:
        """Print the JSON Schema of shipml.yaml (editors read it from the `$schema` line)."""
        import json
        import sys

        from shipml.scaffold.project import config_schema as schema

        sys.stdout.write(json.dumps(schema(), indent=2) + "\n")

    @audit_app.command("verify")
    def audit_verify(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """Check the audit chain, and that the registry agrees with it; exit 1 if an entry was
        edited, reordered or deleted, or a registry change has no audit record."""
        from shipml.registry.client import Registry
        from shipml.registry.recovery import check

        with errors(as_json):
            p = load(project)
            with state(p) as store:
                problems = check(Registry(p), store)
                count = len(store.events())
        emit(
            as_json,
            {"ok": not problems, "entries": count, "problems": problems},
            lambda: console().print(
                f"audit log intact: {count} entries"
                if not problems
                else "audit log TAMPERED or out of step with the registry:\n"
                + "\n".join(f"  - {x}" for x in problems),
                markup=False,
            ),
        )
        if problems:
            raise typer.Exit(1)

    @audit_app.command("log")
    def audit_log(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """List every audit event, oldest first."""
        from rich.table import Table

        with errors(as_json):
            p = load(project)
            with state(p) as store:
                events = store.events()
        table = Table("seq", "at", "actor", "action", "subject")
        for e in events:
            table.add_row(str(e.seq), e.at, e.actor, e.action, e.subject)
        emit(as_json, [e.__dict__ for e in events], lambda: console().print(table))
