"""The MLflow Model Registry, with the memory MLflow lacks.

MLflow keeps versions, tags and the *current* alias of each name, but not who moved an alias,
when, or why. Every alias move is therefore also an audit event (`alias.set`), made together
with it by `Registry` (registry/client.py), and `alias_history` reads that chain back: which
version held each alias, from when until when. The functions here are the per-call entry
points; each builds a `Registry` for its call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipml._libs import mlflow_client
from shipml.config import Project
from shipml.registry.client import ModelVersion, Registry
from shipml.state.store import StateStore

__all__ = [
    "AliasSpan",
    "ModelVersion",
    "Registry",
    "alias_history",
    "get_version",
    "list_versions",
    "load_model",
    "promote",
    "register",
    "set_alias",
    "tag_version",
    "version_for_alias",
]


@dataclass(frozen=True)
class AliasSpan:
    """One stretch of time during which `version` held `alias`."""

    alias: str
    version: int
    since: str
    until: str | None
    actor: str
    reason: str


def register(
    project: Project, store: StateStore, *, run_id: str, model_uri: str, tags: dict[str, Any]
) -> ModelVersion:
    """Register a logged model, tag it and make it the candidate, all or nothing; an earlier,
    interrupted registration is recovered first, under the same lock."""
    from shipml.registry.recovery import recover

    return Registry(project).register(
        store, run_id=run_id, model_uri=model_uri, tags=tags, first=recover
    )


def get_version(project: Project, version: int) -> ModelVersion:
    return Registry(project).get_version(version)


def list_versions(project: Project) -> list[ModelVersion]:
    return Registry(project).list_versions()


def version_for_alias(project: Project, alias: str) -> int | None:
    return Registry(project).alias_version(alias)


def set_alias(
    project: Project, store: StateStore, alias: str, version: int, *, reason: str
) -> int | None:
    """Point `alias` at `version` and record the move; returns the version it held before."""
    return Registry(project).set_alias(store, alias, version, reason=reason)


def tag_version(project: Project, version: int, key: str, value: str) -> None:
    """Set one tag on a version (e.g. `shipml.release`: how its last release ended)."""
    Registry(project).tag(version, key, value)


def promote(project: Project, store: StateStore, version: int, *, reason: str) -> int | None:
    """Make `version` the champion; returns the previous champion's version."""
    return set_alias(project, store, project.config.registry.champion_alias, version, reason=reason)


def alias_history(project: Project, store: StateStore) -> list[AliasSpan]:
    """Which version held each alias of the model, and when, oldest first."""
    prefix = f"{project.model_name}@"
    spans: list[AliasSpan] = []
    open_span: dict[str, int] = {}
    for event in store.events(action="alias.set"):
        if not event.subject.startswith(prefix):
            continue
        alias = event.details["alias"]
        if alias in open_span:
            i = open_span.pop(alias)
            spans[i] = AliasSpan(**{**spans[i].__dict__, "until": event.at})
        if event.details["version"] is None:  # the alias was removed (by recovery)
            continue
        open_span[alias] = len(spans)
        spans.append(
            AliasSpan(
                alias,
                int(event.details["version"]),
                event.at,
                None,
                event.actor,
                event.details.get("reason", ""),
            )
        )
    return spans


def load_model(project: Project, alias: str) -> Any | None:
    """The model an alias points at, or None when the alias is not set yet."""
    version = version_for_alias(project, alias)
    if version is None:
        return None
    mlflow_client(project.tracking_uri)
    import mlflow

    return mlflow.sklearn.load_model(f"models:/{project.model_name}@{alias}")
