"""The state store's schema: step runs and the hash-chained audit log.

Two tables hold every record shipml keeps of its own:
- `step_runs`: one row per stage execution (inputs, outputs, their content hashes, timings,
  status). Rows sharing a `run_id` are one `shipml run`; lineage is read from them.
- `audit_events`: an append-only log of every state change. Each row stores the hash of the
  previous row, so an edit, a deletion or a reordering breaks the chain; `audit_head` holds
  the count and last hash, so deleting the newest row is detected; deleting it *and*
  rewriting the head is caught by the anchors the registry keeps outside this database.

JSON is stored as canonical text rather than a JSON column type, so SQLite and PostgreSQL
hash exactly the same bytes.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("run_id", String(36), nullable=False, index=True),
    Column("stage", String(32), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # running | succeeded | failed | gate_failed
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("duration_s", Float),
    Column("inputs", Text, nullable=False),
    Column("inputs_hash", String(80), nullable=False),
    Column("outputs", Text),
    Column("outputs_hash", String(80)),
    Column("timings", Text),
    Column("error", Text),
    # Who runs the step: a `running` row whose process is gone is marked failed by recovery.
    Column("pid", Integer),
    Column("host", String(200)),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    Column("subject", String(200), nullable=False, index=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(80), nullable=False),
    Column("hash", String(80), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("hash", String(80), nullable=False),
)

# A release: one attempt to put a model version into service, and how it ended.
# status: in_progress | promoted | rejected (failed its analysis) | aborted (rolled back by hand
# or after a crash). The serving release is the newest promoted one.
releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("previous_version", Integer),
    Column("snapshot", String(200)),
    Column("kind", String(16), nullable=False),  # initial | deploy | rollback | promote
    Column("strategy", String(16), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("step", Integer, nullable=False),
    Column("steps", Text, nullable=False),  # JSON list: "shadow" or a traffic share
    Column("analyses", Text, nullable=False),  # JSON list of verdicts, one per window
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
)

# At most one holder per name; a second deploy finds the row and is refused.
locks = Table(
    "locks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("token", String(64), nullable=False),
    Column("acquired_at", String(32), nullable=False),
)
