"""The state store: one SQLAlchemy database for step runs, lineage and the audit chain.

SQLite at `.shipml/state.db` by default; any SQLAlchemy URL otherwise (PostgreSQL past one
machine). Every stage records itself through `StateStore.step()`, and every state change
(a snapshot, a registration, an alias move) through `StateStore.audit()`: one mechanism, so
no stage keeps its own bookkeeping.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, event, insert, inspect, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from shipml._hashing import canonical_json, sha256_json
from shipml._process import pid_alive
from shipml._urls import redact
from shipml.errors import StateError
from shipml.state.tables import audit_events, audit_head, metadata, step_runs

__all__ = ["AuditEvent", "StateStore", "StepRecord", "actor", "utcnow"]

GENESIS = "sha256:" + "0" * 64
LOCK_TRIES = 10  # `locked()` waits this many SQLite busy timeouts (30 s each) at most


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def actor() -> str:
    """Who is acting: SHIPML_ACTOR (set it in CI to the pipeline's identity) or the OS user."""
    return os.environ.get("SHIPML_ACTOR") or getpass.getuser()


@dataclass
class StepRecord:
    """What a running stage fills in; `StateStore.step()` persists it when the stage ends."""

    id: str
    run_id: str
    stage: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    status: str = "running"
    started_at: str = ""
    duration_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def _event_hash(
    seq: int, at: str, who: str, action: str, subject: str, details: Any, prev: str
) -> str:
    return sha256_json([seq, at, who, action, subject, details, prev])


class StateStore:
    """Step runs, lineage and the audit log in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = _engine(url)
            metadata.create_all(self.engine)
            _add_missing_columns(self.engine)
        except SQLAlchemyError as exc:
            raise StateError(
                f"cannot open the state store at {redact(url)}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}; check state.url in shipml.yaml or SHIPML_STATE__URL"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    # ---- step runs -------------------------------------------------------------------------

    @contextmanager
    def step(self, run_id: str, stage: str, inputs: dict[str, Any]) -> Iterator[StepRecord]:
        """Record one stage: a `running` row now, its outcome when the block ends.

        The stage may add to `rec.inputs` once it has resolved them (e.g. which snapshot);
        inputs, outputs and timings are all written when the block ends.

        A GateFailed ends as `gate_failed`, any other exception as `failed`; the exception
        always propagates. A killed process leaves the row `running` with its pid and host;
        `recover_steps()` marks it failed once that process is gone.
        """
        from shipml.errors import GateFailed

        rec = StepRecord(str(uuid.uuid4()), run_id, stage, inputs, started_at=utcnow())
        with self.engine.begin() as conn:
            conn.execute(
                insert(step_runs).values(
                    id=rec.id,
                    run_id=run_id,
                    stage=stage,
                    status="running",
                    started_at=rec.started_at,
                    inputs=canonical_json(inputs),
                    inputs_hash=sha256_json(inputs),
                    pid=os.getpid(),
                    host=socket.gethostname(),
                )
            )
        start = time.perf_counter()
        try:
            yield rec
            rec.status = "succeeded"
        except GateFailed as exc:
            rec.status, rec.error = "gate_failed", str(exc)
            raise
        except BaseException as exc:
            rec.status, rec.error = "failed", f"{exc.__class__.__name__}: {exc}"
            raise
        finally:
            rec.duration_s = time.perf_counter() - start
            with self.engine.begin() as conn:
                conn.execute(
                    update(step_runs)
                    .where(step_runs.c.id == rec.id)
                    .values(
                        inputs=canonical_json(rec.inputs),
                        inputs_hash=sha256_json(rec.inputs),
                        status=rec.status,
                        finished_at=utcnow(),
                        duration_s=rec.duration_s,
                        outputs=canonical_json(rec.outputs),
                        outputs_hash=sha256_json(rec.outputs),
                        timings=canonical_json(rec.timings),
                        error=rec.error,
                    )
                )

    def steps(
        self,
        run_id: str | None = None,
        stage: str | None = None,
        *,
        conn: Connection | None = None,
    ) -> list[StepRecord]:
        """Step runs, oldest first; filtered by pipeline run and/or stage."""
        q = select(step_runs).order_by(step_runs.c.started_at)
        if run_id:
            q = q.where(step_runs.c.run_id == run_id)
        if stage:
            q = q.where(step_runs.c.stage == stage)
        with self._conn(conn) as c:
            rows = c.execute(q).mappings().all()
        return [
            StepRecord(
                id=r["id"],
                run_id=r["run_id"],
                stage=r["stage"],
                inputs=json.loads(r["inputs"]),
                outputs=json.loads(r["outputs"] or "{}"),
                timings=json.loads(r["timings"] or "{}"),
                status=r["status"],
                started_at=r["started_at"],
                duration_s=r["duration_s"],
                error=r["error"],
            )
            for r in rows
        ]

    def recover_steps(self, conn: Connection | None = None) -> list[StepRecord]:
        """Mark `running` steps whose process is gone as failed; returns them.

        Only rows of this host are judged (a pid means nothing elsewhere); a row from before
        pids were recorded stays as it is."""
        host = socket.gethostname()
        dead = []
        with self._conn(conn) as c:
            rows = c.execute(
                select(step_runs.c.id, step_runs.c.pid).where(
                    step_runs.c.status == "running", step_runs.c.host == host
                )
            ).all()
            for row_id, pid in rows:
                if pid is None or pid_alive(pid):
                    continue
                c.execute(
                    update(step_runs)
                    .where(step_runs.c.id == row_id, step_runs.c.status == "running")
                    .values(
                        status="failed",
                        finished_at=utcnow(),
                        error=f"the process (pid {pid} on {host}) ended without recording an "
                        "outcome (killed?); found by a later shipml command",
                    )
                )
                dead.append(row_id)
        return [s for s in self.steps(conn=conn) if s.id in dead] if dead else []

    # ---- the write lock ------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[Connection]:
        """The store's write lock, held for the block, with the transaction that holds it.

        Changes that must stay in step with something outside the database (an MLflow alias
        and its `alias.set` event) are made inside one such block, so no other shipml process
        sees one without the other. Store calls inside the block must pass `conn=` (on SQLite
        a second connection would wait for this very lock). A crash rolls the block back.
        """
        self._ensure_head()
        with self.engine.connect() as conn:
            for attempt in range(LOCK_TRIES):  # each waits up to the driver's busy timeout
                try:
                    conn.begin()  # SQLite: BEGIN IMMEDIATE takes the write lock
                    conn.execute(select(audit_head).where(audit_head.c.id == 1).with_for_update())
                    break
                except OperationalError:
                    conn.rollback()
                    if attempt == LOCK_TRIES - 1:
                        raise StateError(
                            f"the state store at {redact(self.url)} stayed locked by another "
                            f"shipml process for {LOCK_TRIES} tries; find it with `ps`, or "
                            f"retry when it is done"
                        ) from None
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as c:
                yield c

    def _ensure_head(self) -> None:
        with self.engine.connect() as conn:
            if conn.execute(select(audit_head.c.id)).first() is not None:
                return
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(audit_head.c.id)).first() is None:
                    conn.execute(insert(audit_head).values(id=1, count=0, hash=GENESIS))
        except IntegrityError:
            pass  # another process created it first

    # ---- audit log ---------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        subject: str,
        details: dict[str, Any],
        *,
        who: str | None = None,
        conn: Connection | None = None,
    ) -> AuditEvent:
        """Append one event to the hash chain. Safe under concurrent writers (retries).

        With `conn` (from `locked()`), the event is part of that transaction: it is written
        when the block commits, or not at all."""
        who = who or actor()
        details = json.loads(canonical_json(details))  # what is hashed is what is stored
        if conn is not None:
            return self._append(conn, action, subject, details, who)
        for _attempt in range(50):
            try:
                with self.engine.begin() as c:
                    return self._append(c, action, subject, details, who)
            except (IntegrityError, OperationalError):
                time.sleep(0.01)
        raise StateError(
            f"could not append audit event {action!r} after 50 tries; is the store overloaded?"
        )

    def _append(
        self, conn: Connection, action: str, subject: str, details: Any, who: str
    ) -> AuditEvent:
        head = conn.execute(
            select(audit_head).where(audit_head.c.id == 1).with_for_update()
        ).first()
        count, prev = (int(head[1]), str(head[2])) if head else (0, GENESIS)
        seq, at = count + 1, utcnow()
        digest = _event_hash(seq, at, who, action, subject, details, prev)
        conn.execute(
            insert(audit_events).values(
                seq=seq,
                at=at,
                actor=who,
                action=action,
                subject=subject,
                details=canonical_json(details),
                prev_hash=prev,
                hash=digest,
            )
        )
        if head:
            conn.execute(
                update(audit_head)
                .where(audit_head.c.id == 1, audit_head.c.count == count)
                .values(count=seq, hash=digest)
            )
        else:
            conn.execute(insert(audit_head).values(id=1, count=seq, hash=digest))
        return AuditEvent(seq, at, who, action, subject, details, prev, digest)

    def head(self, *, conn: Connection | None = None) -> tuple[int, str]:
        """The audit head: how many entries the log holds and the hash of the newest."""
        with self._conn(conn) as c:
            row = c.execute(select(audit_head)).first()
        return (int(row[1]), str(row[2])) if row else (0, GENESIS)

    def events(
        self,
        *,
        action: str | None = None,
        subject: str | None = None,
        conn: Connection | None = None,
    ) -> list[AuditEvent]:
        q = select(audit_events).order_by(audit_events.c.seq)
        if action:
            q = q.where(audit_events.c.action == action)
        if subject:
            q = q.where(audit_events.c.subject == subject)
        with self._conn(conn) as c:
            rows = c.execute(q).mappings().all()
        return [
            AuditEvent(
                seq=r["seq"],
                at=r["at"],
                actor=r["actor"],
                action=r["action"],
                subject=r["subject"],
                details=json.loads(r["details"]),
                prev_hash=r["prev_hash"],
                hash=r["hash"],
            )
            for r in rows
        ]

    def verify_audit(
        self,
        anchors: Iterable[tuple[str, int, str]] = (),
        *,
        conn: Connection | None = None,
    ) -> list[str]:
        """Every problem in the chain, one line each; empty means intact.

        Detects an edited entry (its hash no longer matches its content), a deleted or
        reordered entry (a gap in the sequence or a broken prev-hash link) and a deleted
        newest entry (the head no longer matches the last row). The head lives in the same
        database, so deleting the newest entries *and* rewriting the head to match is only
        caught by an anchor kept elsewhere: `anchors` are (where, seq, hash) triples recorded
        outside the store (the registry tags each version it changes with the head at that
        moment); each must still be an entry of the chain.
        """
        problems: list[str] = []
        try:
            events = self.events(conn=conn)
        except (json.JSONDecodeError, SQLAlchemyError) as exc:
            return [f"the audit log cannot be read: {exc}"]
        prev, expected_seq = GENESIS, 1
        for e in events:
            if e.seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing (next entry is {e.seq})")
            if e.prev_hash != prev:
                problems.append(f"entry {e.seq} does not follow its predecessor (chain broken)")
            digest = _event_hash(e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash)
            if digest != e.hash:
                problems.append(f"entry {e.seq} ({e.action} {e.subject}) was modified")
            prev, expected_seq = e.hash, e.seq + 1
        count, head_hash = self.head(conn=conn)
        if count != len(events) or head_hash != prev:
            problems.append(
                f"the log holds {len(events)} entries ending in {prev[:15]}…, but the head "
                f"records {count} ending in {head_hash[:15]}… (entries deleted, or appended "
                f"outside shipml)"
            )
        by_seq = {e.seq: e.hash for e in events}
        for where, seq, digest in anchors:
            if by_seq.get(seq) == digest:
                continue
            found = "a different entry" if seq in by_seq else "no such entry"
            problems.append(
                f"{where} records audit entry {seq} ({digest[:15]}…), but the log has {found} "
                f"(it holds {len(events)}): entries were deleted or rewritten, head included"
            )
        return problems


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # serialise writers: no lost chain links

        return engine
    return create_engine(url, pool_pre_ping=True)


def _add_missing_columns(engine: Engine) -> None:
    """Add columns a newer shipml declares to tables an older one created (all nullable)."""
    from sqlalchemy.exc import DBAPIError

    existing = inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            kind = column.type.compile(engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
            except DBAPIError:
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise  # not another process adding it at the same moment
