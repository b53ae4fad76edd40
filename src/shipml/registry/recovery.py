"""Finding and repairing disagreements between MLflow's registry and the audit log.

Registry changes are made under the state store's write lock with their events in the same
transaction (see `registry.client`), so a disagreement seen under that lock is the trace of a
process that died mid-change, or of a change made outside shipml:

- a version shipml created (it carries `shipml.run_id`) with no `model.registered` event: the
  registration died before its events were committed. Recovery tags it
  `shipml.registration=incomplete` and records `model.registration_incomplete`; it never
  becomes candidate or champion.
- a version whose `model.registered` event exists but still tagged `pending`: it died after
  the commit. Recovery completes it (the tag, and the audit anchor).
- an alias whose MLflow value differs from the audit log's last `alias.set`: MLflow moved and
  the event was rolled back. Recovery restores what the log records, and the candidate to
  its definition: the highest completely registered version.
- a `running` step whose process is gone (`StateStore.recover_steps`).

`check` reports these (with the anchors of the audit chain kept on version tags) for
`shipml audit verify`; `recover` repairs them, at the start of `register`, `deploy`,
`promote` and in `shipml registry recover`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipml.registry.client import ANCHOR, REGISTERED_BY, REGISTRAR, REGISTRATION, ModelVersion

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipml.config import Project
    from shipml.registry.client import Registry
    from shipml.state.store import AuditEvent, StateStore

INCOMPLETE_EVENT = "model.registration_incomplete"


@dataclass
class Scan:
    """What the registry and the audit log each say, read under the lock."""

    versions: dict[int, ModelVersion]
    registered: dict[int, AuditEvent]  # version -> its model.registered event
    incomplete: set[int]  # versions recorded as model.registration_incomplete
    aliases: dict[str, int]  # MLflow's aliases
    logged: dict[str, int | None]  # each alias's last alias.set event
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)

    def candidate(self) -> int | None:
        """The highest version that is completely registered and still in the registry."""
        ok = [v for v in self.registered if v in self.versions and v not in self.incomplete]
        return max(ok, default=None)


def scan(registry: Registry, store: StateStore, conn: Connection) -> Scan:
    name = registry.name
    found = Scan({v.version: v for v in registry.list_versions()}, {}, set(), {}, {})
    found.aliases = registry.aliases()
    for e in store.events(conn=conn):
        if e.action == "model.registered" and e.subject.rpartition(":")[0] == name:
            found.registered[int(e.subject.rpartition(":")[2])] = e
        elif e.action == INCOMPLETE_EVENT and e.subject.rpartition(":")[0] == name:
            found.incomplete.add(int(e.subject.rpartition(":")[2]))
        elif e.action == "alias.set" and e.subject.startswith(f"{name}@"):
            found.logged[e.details["alias"]] = e.details["version"]
    for v, mv in sorted(found.versions.items()):
        state = mv.tags.get(REGISTRATION)
        if REGISTERED_BY in mv.tags and v not in found.registered and v not in found.incomplete:
            who = mv.tags.get(REGISTRAR, "an earlier shipml")
            found.problems.append(
                (
                    "unrecorded",
                    f"{mv.label} is in the registry (registered by {who}) but the audit log "
                    f"has no model.registered event for it: its registration was interrupted",
                )
            )
        elif v in found.registered and state == "pending":
            found.problems.append(
                (
                    "unfinished",
                    f"{mv.label}: its registration is in the audit log but was not finished "
                    f"(shipml.registration=pending)",
                )
            )
    for v in sorted(set(found.registered) - set(found.versions)):
        found.problems.append(
            ("missing", f"{name}:{v} has a model.registered event but is not in the registry")
        )
    reg = registry.project.config.registry
    for alias in (reg.candidate_alias, reg.champion_alias):
        mlflow_says, log_says = found.aliases.get(alias), found.logged.get(alias)
        if mlflow_says != log_says:
            found.problems.append(
                (
                    "alias",
                    f"MLflow's {name}@{alias} is version {mlflow_says}, but the audit log's "
                    f"last alias.set for it says {log_says}",
                )
            )
        elif alias == reg.candidate_alias and log_says != found.candidate():
            found.problems.append(
                (
                    "alias",
                    f"{name}@{alias} is version {log_says}, but the candidate is defined as "
                    f"the highest registered version, {found.candidate()}",
                )
            )
    return found


def check(registry: Registry, store: StateStore) -> list[str]:
    """Every problem of the audit chain and every registry/audit disagreement, one line each."""
    with store.locked() as conn:
        found = scan(registry, store, conn)
        anchors = [
            (f"the tag {ANCHOR} of {mv.label}", *_anchor(mv.tags[ANCHOR]))
            for mv in found.versions.values()
            if ANCHOR in mv.tags
        ]
        problems = store.verify_audit(anchors, conn=conn)
    fix = " (run `shipml registry recover`)"
    return (
        problems
        + [message + fix for kind, message in found.problems if kind != "missing"]
        + [message for kind, message in found.problems if kind == "missing"]
    )


def recover(registry: Registry, store: StateStore, conn: Connection) -> list[str]:
    """Inside `store.locked()`: repair what `scan` finds; returns what was done, one line each."""
    done = [
        f"step {s.stage} of run {s.run_id[:8]}: marked failed ({s.error})"
        for s in store.recover_steps(conn)
    ]
    found = scan(registry, store, conn)
    if not found.problems:
        return done
    reg = registry.project.config.registry
    for v, mv in sorted(found.versions.items()):
        if REGISTERED_BY in mv.tags and v not in found.registered and v not in found.incomplete:
            registry.tag(v, REGISTRATION, "incomplete")
            store.audit(
                INCOMPLETE_EVENT,
                mv.label,
                {"version": v, "registrar": mv.tags.get(REGISTRAR), "reason": "interrupted"},
                conn=conn,
            )
            found.incomplete.add(v)
            done.append(f"{mv.label}: marked incomplete (its registration was interrupted)")
        elif v in found.registered and mv.tags.get(REGISTRATION) == "pending":
            event = found.registered[v]
            registry.complete(v, (event.seq, event.hash))
            done.append(f"{mv.label}: registration completed")
    wanted = {reg.candidate_alias: found.candidate()}
    wanted[reg.champion_alias] = found.logged.get(reg.champion_alias)
    for alias, version in wanted.items():
        if found.aliases.get(alias) == version == found.logged.get(alias):
            continue
        why = "recovery: " + (
            "the candidate is the highest registered version"
            if alias == reg.candidate_alias
            else "restored to what the audit log records"
        )
        registry.move_alias(store, conn, alias, version, why)
        done.append(f"{registry.name}@{alias}: set to {version} ({why})")
    return done


def run_recovery(project: Project, store: StateStore) -> list[str]:
    """Recovery as a command of its own (and at the start of `deploy` and `promote`)."""
    from shipml.registry.client import Registry

    registry = Registry(project)
    with store.locked() as conn:
        return recover(registry, store, conn)


def _anchor(value: str) -> tuple[int, str]:
    seq, _, digest = value.partition(":")
    try:
        return int(seq), digest
    except ValueError:
        return -1, value
