"""Data commands: `snapshots list | show | verify | clean` and `expectations suggest`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipml.cli._common import JsonOpt, ProjectOpt, console, emit, errors, load, state

VersionArg = Annotated[int | None, typer.Argument(help="Snapshot version; default: the latest.")]


def register_commands(app: typer.Typer) -> None:
    snaps = typer.Typer(help="Immutable, versioned data snapshots.", no_args_is_help=True)
    expectations = typer.Typer(help="The Great Expectations suite.", no_args_is_help=True)
    app.add_typer(snaps, name="snapshots")
    app.add_typer(expectations, name="expectations")

    @snaps.command("list")
    def snapshots_list(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """Every snapshot of the project's dataset, oldest first."""
        from rich.table import Table

        from shipml.data.snapshots import SnapshotStore

        with errors(as_json):
            p = load(project)
            found = SnapshotStore(p.snapshot_root).list(p.dataset)
        table = Table("version", "created", "rows", "content hash", "source")
        for s in found:
            table.add_row(str(s.version), s.created_at, str(s.rows), s.content_hash[:23], s.source)
        emit(as_json, [s.__dict__ for s in found], lambda: console().print(table))

    @snaps.command("show")
    def snapshots_show(
        version: VersionArg = None, project: ProjectOpt = Path("."), as_json: JsonOpt = False
    ) -> None:
        """One snapshot: source, hashes, schema and files."""
        import yaml

        from shipml.data.snapshots import SnapshotStore

        with errors(as_json):
            p = load(project)
            snap = SnapshotStore(p.snapshot_root).get(p.dataset, version)
        emit(
            as_json,
            snap.__dict__,
            lambda: console().print(yaml.safe_dump(snap.__dict__, sort_keys=False), markup=False),
        )

    @snaps.command("verify")
    def snapshots_verify(
        version: VersionArg = None, project: ProjectOpt = Path("."), as_json: JsonOpt = False
    ) -> None:
        """Recompute a snapshot's hashes; exit 1 naming any modified, missing or orphan file."""
        from shipml.data.snapshots import SnapshotStore

        with errors(as_json):
            p = load(project)
            result = SnapshotStore(p.snapshot_root).verify(p.dataset, version)
        emit(
            as_json,
            {"ok": result.ok, "problems": result.problems, "orphans": result.orphans},
            lambda: console().print(
                "snapshot intact" if result.ok else "\n".join(result.problems), markup=False
            ),
        )
        if not result.ok:
            raise typer.Exit(1)

    @snaps.command("clean")
    def snapshots_clean(
        min_age: Annotated[
            float,
            typer.Option(
                min=0,
                help="Keep orphans younger than this many minutes: they may belong to an "
                "ingest that is about to commit.",
            ),
        ] = 60.0,
        project: ProjectOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Delete the data files no snapshot references (left by a killed ingest); audited."""
        from shipml.data.snapshots import SnapshotStore

        with errors(as_json):
            p = load(project)
            removed, kept = SnapshotStore(p.snapshot_root).remove_orphans(p.dataset, min_age * 60)
            if removed:
                with state(p) as store:
                    store.audit(
                        "snapshot.orphans_removed",
                        p.dataset,
                        {"dataset": p.dataset, "files": removed, "root": p.snapshot_root},
                    )
        lines = [f"removed {path}" for path in removed] + [
            f"kept {path} (younger than {min_age:g} minutes; pass --min-age 0 once no ingest "
            f"is running)"
            for path in kept
        ]
        emit(
            as_json,
            {"removed": removed, "kept": kept},
            lambda: console().print("\n".join(lines) or "no orphan files", markup=False),
        )

    @expectations.command("suggest")
    def expectations_suggest(
        version: VersionArg = None,
        project: ProjectOpt = Path("."),
        force: Annotated[bool, typer.Option(help="Overwrite an existing suite file.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Profile a reference snapshot into a reviewable suite file (validation.suite)."""
        from shipml.data.snapshots import SnapshotStore
        from shipml.errors import UsageError
        from shipml.validate.suggest import suggest_suite, write_suite

        with errors(as_json):
            p = load(project)
            path = p.path(p.config.validation.suite)
            if path.exists() and not force:
                raise UsageError(f"{path} exists; review it by hand, or pass --force to replace it")
            store = SnapshotStore(p.snapshot_root)
            snap = store.get(p.dataset, version)
            suite = suggest_suite(
                store.load(snap.dataset, snap.version),
                name=p.name,
                settings=p.config.validation.suggest,
                key=p.config.data.key,
                target=p.config.training.target,
            )
            write_suite(suite, path)
        count = len(suite.get("expectations", []))
        emit(
            as_json,
            {"suite": str(path), "expectations": count, "snapshot": snap.version},
            lambda: console().print(
                f"wrote {count} expectations from {snap.dataset}@{snap.version} to {path}; "
                f"review it and commit it",
                markup=False,
            ),
        )
