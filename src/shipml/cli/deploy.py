"""Release commands: `deploy`, `status`, `promote`, `rollback`, `down`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipml.cli._common import JsonOpt, ProjectOpt, console, emit, errors, for_model, load, state

if TYPE_CHECKING:
    from shipml.config import Project
    from shipml.deploy.controller import Controller


def register_commands(app: typer.Typer) -> None:
    @app.command()
    def deploy(
        version: Annotated[
            int | None, typer.Option(help="The version to release (default: the candidate).")
        ] = None,
        resume: Annotated[
            bool, typer.Option(help="Continue a release whose controller was killed.")
        ] = False,
        project: ProjectOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Release a model version: shadow, canary steps, analysis, then promote or roll back."""
        with errors(as_json), _controller(load(project), as_json, recover=True) as c:
            release = c.deploy(version, resume=resume)
        emit(as_json, release.to_dict(), lambda: _served(c, f"release {release.id}: promoted"))

    @app.command()
    def status(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """What serves where: versions, weights, health, the release in progress."""
        with errors(as_json), _controller(load(project), as_json) as c:
            found = c.status()
        emit(as_json, found, lambda: _render_status(found))

    @app.command()
    def promote(
        model: Annotated[str | None, typer.Argument(help="Registered model name.")] = None,
        version: Annotated[int | None, typer.Argument(help="The version to promote.")] = None,
        reason: Annotated[
            str, typer.Option("--reason", "-r", help="Why; kept in the audit log.")
        ] = "promoted by hand",
        project: ProjectOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Promote the release in progress now; or serve MODEL VERSION and make it champion
        (only the champion alias moves while nothing is deployed)."""
        with errors(as_json):
            p = for_model(project, model) if model else load(project)
            with _controller(p, as_json, recover=True) as c:
                release = c.promote(version, reason=reason)
        alias = p.config.registry.champion_alias
        payload: dict[str, Any] = {"model": p.model_name, "alias": alias}
        if release is None:
            payload |= {"version": version, "deployed": False}
            emit(as_json, payload, lambda: _say(f"{p.model_name}@{alias} -> {version}"))
        else:
            payload |= {"version": release.version, "deployed": True, "release": release.id}
            emit(as_json, payload, lambda: _served(c, f"release {release.id}: promoted"))

    @app.command()
    def rollback(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """Abandon the release in progress, or go back to the previous release."""
        with errors(as_json), _controller(load(project), as_json) as c:
            release = c.rollback()
        emit(as_json, release.to_dict(), lambda: _served(c, f"release {release.id}: rolled back"))

    @app.command()
    def down(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
        """Stop the local server (in-flight requests finish, the inference log is flushed)."""
        with errors(as_json), _controller(load(project), as_json) as c:
            c.down()
        emit(as_json, {"stopped": True}, lambda: _say("the local server is stopped"))


@contextmanager
def _controller(project: Project, quiet: bool, *, recover: bool = False) -> Iterator[Controller]:
    """The release controller; with `recover`, interrupted registry changes are repaired
    first (`shipml registry recover`), so a release never starts from a half-made version."""
    from shipml.deploy.controller import Controller
    from shipml.deploy.local import LocalTarget
    from shipml.registry.recovery import run_recovery

    err = console(stderr=True)
    say = (lambda _m: None) if quiet else (lambda m: err.print(m, markup=False))
    with state(project) as store:
        if recover:
            for line in run_recovery(project, store):
                say(f"recovered: {line}")
        yield Controller(
            project,
            store,
            LocalTarget(project),
            say=say,
        )


def _say(message: str) -> None:
    console().print(message, markup=False)


def _served(c: Controller, headline: str) -> None:
    from shipml.deploy.local import curl_example

    _say(headline)
    status = c.target.status()
    for v in status.variants:
        _say(f"  {v.name}: {c.project.model_name}:{v.version} weight {v.weight:g}")
    stable = status.variant("stable")
    if status.url and stable is not None:
        folder = c.project.state_dir / "serve" / "models" / c.project.model_name
        _say(f"try it:\n{curl_example(folder / str(stable.version), status.url)}")


def _render_status(found: dict[str, Any]) -> None:
    t = found["target"]
    health = "ready" if t["ready"] else ("up, not ready" if t["up"] else "down")
    _say(f"{found['model']} on the {t['kind']} target: {health} {t['url'] or ''}".rstrip())
    if t["detail"]:
        _say(f"  {t['detail']}")
    for v in t["variants"]:
        role = "shadow" if v["shadow"] else f"weight {v['weight']:g}"
        _say(f"  {v['name']}: version {v['version']} ({role})")
    _say("aliases: " + ", ".join(f"{a}={v or '-'}" for a, v in found["aliases"].items()))
    current = found["in_progress"]
    if current:
        _say(
            f"release {current['id']} in progress: version {current['version']} "
            f"at {current['current_step']}"
        )
        if current["traffic"] not in (None, "live"):
            _say(f"  judged on {current['traffic']} (deploy.analysis.replay), not on users")
        last = current.get("last_analysis")
        if last:
            _say(f"  last analysis: {last['status']}")
            for check in last["checks"]:
                _say(f"    {check['status']:<12} {check['detail']}")
    if found["lock"]:
        stale = " (its process is gone)" if found["lock"]["stale"] else ""
        _say(f"lock held by {found['lock']['holder']}{stale}")
    for r in found["releases"]:
        _say(
            f"  release {r['id']}: version {r['version']} {r['kind']} {r['status']} "
            f"{r['started_at']} {r['reason']}"
            + (f" [{r['traffic']} traffic]" if r["traffic"] not in (None, "live") else "")
        )
