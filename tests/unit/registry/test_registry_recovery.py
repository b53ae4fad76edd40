"""A registration killed half-way is found, reported by `audit verify`, and recovered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipml.cli import app
from shipml.errors import RegistryError
from shipml.registry.models import set_alias, version_for_alias
from tests.unit.registry.conftest import Reg

DRIVER = Path(__file__).with_name("_register_process.py")


def verify(reg: Reg) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = CliRunner().invoke(app, ["audit", "verify", "--json", "-p", str(reg.project.root)])
    return out.exit_code, json.loads(out.stdout)


def recover(reg: Reg) -> list[str]:
    out = CliRunner().invoke(app, ["registry", "recover", "--json", "-p", str(reg.project.root)])
    assert out.exit_code == 0, out.output
    return list(json.loads(out.stdout)["repaired"])


def registered_process(reg: Reg, run: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(reg.project.root), reg.model_uri, run],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_version_without_its_audit_event_is_reported_and_marked_incomplete(reg: Reg) -> None:
    """The crash state of issue 10, built through MLflow's own client: a READY version with
    all of shipml's tags, and no `model.registered` event."""
    assert reg.register("r1") == 1
    mv = reg.client().create_model_version(
        "regtest", source=reg.model_uri, tags={"shipml.run_id": "r2", "shipml.snapshot": "d@0"}
    )
    assert mv.status == "READY"
    code, report = verify(reg)
    assert code == 1
    assert any("regtest:2" in p and "no model.registered event" in p for p in report["problems"])

    done = recover(reg)
    assert any("regtest:2: marked incomplete" in line for line in done)
    assert reg.client().get_model_version("regtest", "2").tags["shipml.registration"] == (
        "incomplete"
    )
    assert verify(reg)[0] == 0
    assert version_for_alias(reg.project, "candidate") == 1
    with pytest.raises(RegistryError, match="never completely registered"):
        set_alias(reg.project, reg.store, "champion", 2, reason="test")
    assert reg.register("r3") == 3  # and the next one is the candidate, as defined
    assert version_for_alias(reg.project, "candidate") == 3


@pytest.mark.slow
@pytest.mark.parametrize("point", ["register.created", "register.committed"])
def test_a_registration_killed_by_sigkill_is_recovered_by_the_next_one(
    reg: Reg, point: str
) -> None:
    """A real process SIGKILLs itself (shipml's test seam) right after MLflow created the
    version (no audit event yet), or right after the events were committed (tags not done)."""
    assert reg.register("r1") == 1
    child = registered_process(reg, "r2", SHIPML_TEST_CRASH_AT=point)
    _out, err = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, err
    mv = reg.client().get_model_version("regtest", "2")
    assert (mv.status, mv.tags["shipml.registration"]) == ("READY", "pending")
    [step] = reg.store.steps(stage="register")
    assert step.status == "running"

    code, report = verify(reg)
    assert code == 1, report
    assert any("regtest:2" in p for p in report["problems"]), report

    assert reg.register("r3") == 3  # the next registration recovers first
    [step] = reg.store.steps(stage="register")
    assert step.status == "failed" and "ended without recording an outcome" in step.error
    tag = reg.client().get_model_version("regtest", "2").tags["shipml.registration"]
    assert tag == ("incomplete" if point == "register.created" else "complete")
    assert version_for_alias(reg.project, "candidate") == 3
    code, report = verify(reg)
    assert code == 0, report
    registered = [e.subject for e in reg.store.events(action="model.registered")]
    expected = (
        ["regtest:1", "regtest:3"]
        if point == "register.created"
        else ["regtest:1", "regtest:2", "regtest:3"]
    )
    assert registered == expected


def test_an_alias_moved_in_mlflow_without_its_event_is_reported_and_restored(reg: Reg) -> None:
    reg.register("r1")
    reg.register("r2")
    reg.client().set_registered_model_alias("regtest", "candidate", "1")  # no alias.set event
    code, report = verify(reg)
    assert code == 1
    assert any("regtest@candidate is version 1" in p for p in report["problems"])
    recover(reg)
    assert version_for_alias(reg.project, "candidate") == 2
    assert verify(reg)[0] == 0


def test_truncating_the_log_and_rewriting_its_head_is_detected(reg: Reg) -> None:
    """Delete the newest event and rewrite `audit_head` to match: the chain alone is intact,
    but the anchor on the version's tags names the deleted entry."""
    from sqlalchemy import delete, update

    from shipml.state.tables import audit_events, audit_head

    reg.register("r1")
    reg.register("r2")
    assert verify(reg)[0] == 0
    last, before = reg.store.events()[-1], reg.store.events()[-2]
    with reg.store.engine.begin() as c:
        c.execute(delete(audit_events).where(audit_events.c.seq == last.seq))
        c.execute(update(audit_head).values(count=before.seq, hash=before.hash))
    assert reg.store.verify_audit() == []  # what the database alone can tell
    code, report = verify(reg)
    assert code == 1
    assert any(
        "shipml.audit_head of regtest:2" in p and f"entry {last.seq}" in p
        for p in report["problems"]
    ), report
