"""`Registry`: the one owner of MLflow's Model Registry within a command.

Built once per command with one MLflow client (and no global tracking URI set as a side
effect), it makes every registry change in step with the audit log:

- Every change that MLflow and the audit log must agree on (a new version and its
  `model.registered` event, an alias and its `alias.set` event) is made while holding the
  state store's write lock (`StateStore.locked()`), with the events in that same transaction.
  No other shipml process can see one half without the other; a crash rolls the events back
  and leaves the MLflow half for `registry.recovery` to find, under the same lock.
- **The candidate is the highest registered version.** Registrations run one at a time under
  the lock and move the candidate only upwards (compare-and-set), so a slower registration
  of an older version never moves it back, and the `alias.set` events follow MLflow's alias.
- A new version carries `shipml.registration=pending` from the moment it exists, and
  `complete` once its events are committed; recovery marks a version whose registration died
  before that `incomplete`, and such a version is never made candidate or champion.
- After each change the version is tagged `shipml.audit_head=<seq>:<hash>` (the event just
  written): an anchor of the audit chain outside the state database, checked by
  `shipml audit verify`, so deleting the newest events and rewriting the head is detected.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipml._libs import offline
from shipml._seam import crash_point
from shipml.errors import RegistryError
from shipml.state.store import AuditEvent, StateStore, actor

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipml.config import Project

REGISTERED_BY = "shipml.run_id"  # every version shipml registers carries this tag
REGISTRATION = "shipml.registration"  # pending | complete | incomplete
REGISTRAR = "shipml.registrar"  # who registered it: "<actor> pid <pid> on <host>"
ANCHOR = "shipml.audit_head"  # "<seq>:<hash>" of the audit event written for it last


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


class Registry:
    """The project's registered model in MLflow, changed only in step with the audit log."""

    def __init__(self, project: Project) -> None:
        offline()
        from mlflow import MlflowClient

        self.project = project
        self.name = project.model_name
        self.client = MlflowClient(
            tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri
        )

    # ---- reading ---------------------------------------------------------------------------

    def get_version(self, version: int) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(self.name, str(version))
        except MlflowException:
            raise RegistryError(
                f"model {self.name!r} has no version {version}; "
                f"list them with `shipml registry versions`"
            ) from None
        return _version(mv, list(mv.aliases or []))

    def list_versions(self) -> list[ModelVersion]:
        aliases = self.aliases()
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        if not aliases and not self._model_exists():
            return []  # nothing registered yet
        found = self.client.search_model_versions(filter_string=f"name = '{self.name}'")
        return sorted(
            (_version(mv, sorted(by_version.get(int(mv.version), []))) for mv in found),
            key=lambda v: v.version,
        )

    def aliases(self) -> dict[str, int]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_registered_model(self.name).aliases or {}
        except MlflowException:
            return {}
        return {alias: int(version) for alias, version in found.items()}

    def alias_version(self, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    # ---- changing ----------------------------------------------------------------------------

    def tag(self, version: int, key: str, value: str) -> None:
        self.client.set_model_version_tag(self.name, str(version), key, value)

    def register(
        self,
        store: StateStore,
        *,
        run_id: str,
        model_uri: str,
        tags: dict[str, Any],
        first: Callable[[Registry, StateStore, Any], object] | None = None,
    ) -> ModelVersion:
        """Register a logged model, tag it and make it the candidate, all or nothing.

        `first(registry, store, conn)` runs under the same lock before anything is created:
        `registry.models.register` passes `recovery.recover`, so an earlier, interrupted
        registration is recovered first (recovery builds on this module, not the reverse)."""
        clean = {k: str(v) for k, v in tags.items()}
        clean |= {REGISTRATION: "pending", REGISTRAR: _registrar()}
        candidate = self.project.config.registry.candidate_alias
        version: int | None = None
        moved: tuple[int | None] | None = None  # (previous,) once MLflow's alias has moved
        try:
            with store.locked() as conn:
                if first is not None:
                    first(self, store, conn)
                version = self._create(run_id, model_uri, clean)
                crash_point("register.created")
                last = store.audit(
                    "model.registered",
                    f"{self.name}:{version}",
                    {"run_id": run_id, "model_uri": model_uri, "tags": clean},
                    conn=conn,
                )
                current = self.alias_version(candidate)
                if current is None or version > current:  # the candidate only moves up
                    moved = (current,)
                    last = self._move(store, conn, candidate, version, current, "registered")
        except BaseException:
            if version is not None:
                self._undo_registration(version, candidate, moved)
            raise
        crash_point("register.committed")
        self.complete(version, last)
        return self.get_version(version)

    def complete(self, version: int, last: AuditEvent | tuple[int, str]) -> None:
        """Mark a registration whose events are committed complete, and anchor the chain."""
        self.tag(version, REGISTRATION, "complete")
        self.anchor(version, last)

    def anchor(self, version: int, last: AuditEvent | tuple[int, str]) -> None:
        seq, digest = (last.seq, last.hash) if isinstance(last, AuditEvent) else last
        self.tag(version, ANCHOR, f"{seq}:{digest}")

    def set_alias(self, store: StateStore, alias: str, version: int, *, reason: str) -> int | None:
        """Point `alias` at `version` and record the move; returns the version it held before."""
        mv = self.get_version(version)  # fail early, with the teaching message, on a bad version
        moved: tuple[int | None] | None = None
        try:
            with store.locked() as conn:
                if not self.registered(store, conn, mv):
                    raise RegistryError(
                        f"{mv.label} was never completely registered (its registration was "
                        f"interrupted; shipml.registration={mv.tags.get(REGISTRATION)}), so it "
                        f"cannot become {alias!r}; register the model again with "
                        f"`shipml register`"
                    )
                previous = self.alias_version(alias)
                moved = (previous,)
                last = self._move(store, conn, alias, version, previous, reason)
        except BaseException:
            if moved is not None:
                self._restore_alias(alias, moved[0])
            raise
        self.anchor(version, last)
        return previous

    def registered(self, store: StateStore, conn: Connection, mv: ModelVersion) -> bool:
        """Inside `store.locked()`: whether `mv` may hold an alias. A version shipml made must
        have its `model.registered` event; one made outside shipml is taken as it is."""
        if mv.tags.get(REGISTRATION) == "incomplete":
            return False
        if REGISTERED_BY not in mv.tags:
            return True
        return bool(store.events(action="model.registered", subject=mv.label, conn=conn))

    def move_alias(
        self, store: StateStore, conn: Connection, alias: str, version: int | None, reason: str
    ) -> AuditEvent:
        """Inside `store.locked()`: point `alias` at `version` (None: remove it) and record it."""
        return self._move(store, conn, alias, version, self.alias_version(alias), reason)

    def _move(
        self,
        store: StateStore,
        conn: Connection,
        alias: str,
        version: int | None,
        previous: int | None,
        reason: str,
    ) -> AuditEvent:
        if version is None:
            if previous is not None:
                self.client.delete_registered_model_alias(self.name, alias)
        else:
            self.client.set_registered_model_alias(self.name, alias, str(version))
        return store.audit(
            "alias.set",
            f"{self.name}@{alias}",
            {"alias": alias, "version": version, "previous": previous, "reason": reason},
            conn=conn,
        )

    def _create(self, run_id: str, model_uri: str, tags: dict[str, str]) -> int:
        from mlflow.exceptions import MlflowException

        try:
            if not self._model_exists():
                try:
                    self.client.create_registered_model(
                        self.name, description=f"Registered by shipml ({self.project.name})"
                    )
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
            mv = self.client.create_model_version(
                self.name, source=model_uri, run_id=run_id, tags=tags
            )
        except MlflowException as exc:
            raise RegistryError(
                f"MLflow refused to register {model_uri} as {self.name!r}: {exc.message}"
            ) from None
        return int(mv.version)

    def _model_exists(self) -> bool:
        return bool(self.client.search_registered_models(filter_string=f"name = '{self.name}'"))

    def _undo_registration(self, version: int, alias: str, moved: tuple[int | None] | None) -> None:
        """No half-registered model: the events rolled back with the lock's transaction."""
        if moved is not None:
            self._restore_alias(alias, moved[0])
        with contextlib.suppress(Exception):  # one left behind is marked by recovery
            self.client.delete_model_version(self.name, str(version))

    def _restore_alias(self, alias: str, previous: int | None) -> None:
        with contextlib.suppress(Exception):  # else recovery restores what the log records
            if previous is None:
                self.client.delete_registered_model_alias(self.name, alias)
            else:
                self.client.set_registered_model_alias(self.name, alias, str(previous))


def _version(mv: Any, aliases: list[str]) -> ModelVersion:
    return ModelVersion(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id or "",
        source=mv.source or "",
        aliases=aliases,
        tags=dict(mv.tags or {}),
    )


def _registrar() -> str:
    return f"{actor()} pid {os.getpid()} on {socket.gethostname()}"
