"""Releases and the deploy lock, kept in the state store beside step runs and the audit log.

A release is one attempt to put a model version into service: which version, which one it
replaces, the planned steps, how far it got, every analysis verdict, and how it ended. The
serving release of a model is its newest `promoted` one; there is only ever one, so there is
only ever one champion.

The lock is a row keyed by name: inserting it is acquiring it, so two deploys racing on
SQLite or PostgreSQL cannot both proceed, and the loser learns who holds it. A holder that
died leaves its row behind; `Lock.stale` says when its process is gone (same host only), and
the recovery commands take such a lock over.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from shipml._process import pid_alive
from shipml.errors import StateError
from shipml.state.store import StateStore, actor, utcnow
from shipml.state.tables import locks, releases

__all__ = ["Lock", "LockHeld", "Release", "Releases"]

Status = Literal["in_progress", "promoted", "rejected", "aborted"]
Step = str | float  # "shadow", or the candidate's traffic share in percent


@dataclass(frozen=True)
class Release:
    id: int
    model: str
    version: int
    previous_version: int | None
    snapshot: str | None
    kind: str
    strategy: str
    status: Status
    step: int
    steps: list[Step]
    analyses: list[dict[str, Any]]
    actor: str
    reason: str
    started_at: str
    finished_at: str | None = None

    @property
    def current_step(self) -> Step | None:
        return self.steps[self.step] if 0 <= self.step < len(self.steps) else None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Lock:
    name: str
    holder: str
    host: str
    pid: int
    token: str
    acquired_at: str

    @property
    def stale(self) -> bool:
        """The holder ran on this host and its process is gone."""
        return self.host == socket.gethostname() and not pid_alive(self.pid)

    def describe(self) -> str:
        return f"{self.holder} (pid {self.pid} on {self.host}, since {self.acquired_at})"


class LockHeld(StateError):
    """Someone else holds the lock."""

    def __init__(self, message: str, lock: Lock) -> None:
        super().__init__(message)
        self.lock = lock


@dataclass
class Releases:
    """Release records and locks of one state store."""

    store: StateStore

    # ---- releases ----------------------------------------------------------------------

    def create(
        self,
        *,
        model: str,
        version: int,
        previous_version: int | None,
        snapshot: str | None,
        kind: str,
        strategy: str,
        steps: list[Step],
        reason: str,
        status: Status = "in_progress",
    ) -> Release:
        now = utcnow()
        with self.store.engine.begin() as conn:
            result = conn.execute(
                insert(releases).values(
                    model=model,
                    version=version,
                    previous_version=previous_version,
                    snapshot=snapshot,
                    kind=kind,
                    strategy=strategy,
                    status=status,
                    step=0,
                    steps=json.dumps(steps),
                    analyses="[]",
                    actor=actor(),
                    reason=reason,
                    started_at=now,
                    finished_at=None if status == "in_progress" else now,
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return self.get(int(key[0]))

    def get(self, release_id: int) -> Release:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(releases).where(releases.c.id == release_id)).mappings()
            found = row.first()
        if found is None:
            raise StateError(f"no release {release_id}; list them with `shipml status`")
        return _release(found)

    def history(self, model: str, limit: int | None = None) -> list[Release]:
        """Newest first."""
        q = select(releases).where(releases.c.model == model).order_by(releases.c.id.desc())
        if limit:
            q = q.limit(limit)
        with self.store.engine.connect() as conn:
            return [_release(r) for r in conn.execute(q).mappings()]

    def serving(self, model: str) -> Release | None:
        """The release in service: the newest promoted one."""
        return next((r for r in self.history(model) if r.status == "promoted"), None)

    def in_progress(self, model: str) -> Release | None:
        return next((r for r in self.history(model) if r.status == "in_progress"), None)

    def advance(self, release: Release, step: int) -> Release:
        return self._update(release, step=step)

    def add_analysis(self, release: Release, verdict: dict[str, Any]) -> Release:
        current = self.get(release.id)
        return self._update(release, analyses=json.dumps([*current.analyses, verdict]))

    def finish(self, release: Release, status: Status, reason: str | None = None) -> Release:
        values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
        if reason is not None:
            values["reason"] = reason
        return self._update(release, **values)

    def _update(self, release: Release, **values: Any) -> Release:
        with self.store.engine.begin() as conn:
            conn.execute(update(releases).where(releases.c.id == release.id).values(**values))
        return self.get(release.id)

    # ---- locks -------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str, *, take_stale: bool = False) -> Iterator[Lock]:
        """Hold `name` for the block. Refused (LockHeld) while another live holder has it;
        a stale lock (its process died) is taken over only when `take_stale`."""
        held = self.acquire(name, take_stale=take_stale)
        try:
            yield held
        finally:
            self.release(held)

    def acquire(self, name: str, *, take_stale: bool = False) -> Lock:
        mine = Lock(name, actor(), socket.gethostname(), os.getpid(), uuid.uuid4().hex, utcnow())
        for _attempt in range(3):
            try:
                with self.store.engine.begin() as conn:
                    conn.execute(insert(locks).values(**mine.__dict__))
                return mine
            except IntegrityError:
                current = self.holder(name)
                if current is None:
                    continue  # released between our insert and our read: try again
                if not (take_stale and current.stale):
                    hint = (
                        "its process is gone: recover with `shipml rollback` or "
                        "`shipml deploy --resume`"
                        if current.stale
                        else "wait for it to finish, or stop it"
                    )
                    raise LockHeld(
                        f"{name} is held by {current.describe()}; {hint}", current
                    ) from None
                with self.store.engine.begin() as conn:
                    conn.execute(
                        delete(locks).where(locks.c.name == name, locks.c.token == current.token)
                    )
        raise StateError(f"could not acquire {name}; the state store keeps changing under us")

    def release(self, held: Lock) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                delete(locks).where(locks.c.name == held.name, locks.c.token == held.token)
            )

    def holder(self, name: str) -> Lock | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(locks).where(locks.c.name == name)).mappings().first()
        return Lock(**dict(row)) if row else None


def _release(row: Any) -> Release:
    data = dict(row)
    data["steps"] = json.loads(data["steps"])
    data["analyses"] = json.loads(data["analyses"])
    return Release(**data)
