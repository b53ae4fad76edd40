"""The MLflow Model Registry, with the memory MLflow lacks.

MLflow keeps versions, tags and the *current* alias of each name, but not who moved an alias,
when, or why. Every alias move here is therefore also an audit event (`alias.set`), and
`alias_history` reads that chain back: which version held each alias, from when until when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipml._libs import mlflow_client
from shipml.config import Project
from shipml.errors import RegistryError
from shipml.state.store import StateStore


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    run_id: str
    source: str
    aliases: list[str]
    tags: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


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
    """Register a logged model, tag it and point the candidate alias at it, all or nothing."""
    client = mlflow_client(project.tracking_uri)
    from mlflow.exceptions import MlflowException

    name = project.model_name
    clean_tags = {k: str(v) for k, v in tags.items()}
    try:
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(
                name, description=f"Registered by shipml ({project.name})"
            )
        mv = client.create_model_version(name, source=model_uri, run_id=run_id, tags=clean_tags)
    except MlflowException as exc:
        raise RegistryError(
            f"MLflow refused to register {model_uri} as {name!r}: {exc.message}"
        ) from None
    version = int(mv.version)
    try:
        set_alias(
            project, store, project.config.registry.candidate_alias, version, reason="registered"
        )
        store.audit(
            "model.registered",
            f"{name}:{version}",
            {"run_id": run_id, "model_uri": model_uri, "tags": clean_tags},
        )
    except BaseException:
        client.delete_model_version(name, str(version))  # no half-registered model
        raise
    return get_version(project, version)


def get_version(project: Project, version: int) -> ModelVersion:
    client = mlflow_client(project.tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(project.model_name, str(version))
    except MlflowException:
        raise RegistryError(
            f"model {project.model_name!r} has no version {version}; "
            f"list them with `shipml registry versions`"
        ) from None
    return ModelVersion(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id or "",
        source=mv.source or "",
        aliases=list(mv.aliases or []),
        tags=dict(mv.tags or {}),
    )


def list_versions(project: Project) -> list[ModelVersion]:
    client = mlflow_client(project.tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(project.model_name).aliases or {}
    except MlflowException:
        return []  # nothing registered yet
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(int(version), []).append(alias)
    found = client.search_model_versions(filter_string=f"name = '{project.model_name}'")
    return sorted(
        (
            ModelVersion(
                name=mv.name,
                version=int(mv.version),
                run_id=mv.run_id or "",
                source=mv.source or "",
                aliases=sorted(by_version.get(int(mv.version), [])),
                tags=dict(mv.tags or {}),
            )
            for mv in found
        ),
        key=lambda v: v.version,
    )


def version_for_alias(project: Project, alias: str) -> int | None:
    client = mlflow_client(project.tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(project.model_name, alias).version)
    except MlflowException:
        return None


def set_alias(
    project: Project, store: StateStore, alias: str, version: int, *, reason: str
) -> int | None:
    """Point `alias` at `version` and record the move; returns the version it held before."""
    get_version(project, version)  # fail early, with the teaching message, on a bad version
    client = mlflow_client(project.tracking_uri)
    previous = version_for_alias(project, alias)
    client.set_registered_model_alias(project.model_name, alias, str(version))
    try:
        store.audit(
            "alias.set",
            f"{project.model_name}@{alias}",
            {"alias": alias, "version": version, "previous": previous, "reason": reason},
        )
    except BaseException:
        if previous is None:
            client.delete_registered_model_alias(project.model_name, alias)
        else:
            client.set_registered_model_alias(project.model_name, alias, str(previous))
        raise
    return previous


def tag_version(project: Project, version: int, key: str, value: str) -> None:
    """Set one tag on a version (e.g. `shipml.release`: how its last release ended)."""
    mlflow_client(project.tracking_uri).set_model_version_tag(
        project.model_name, str(version), key, value
    )


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
            i = open_span[alias]
            spans[i] = AliasSpan(**{**spans[i].__dict__, "until": event.at})
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
