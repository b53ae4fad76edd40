import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, text, update

from shipml.errors import GateFailed, StateError
from shipml.state.store import StateStore
from shipml.state.tables import audit_events, audit_head


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    """Every store test runs on SQLite and on a real PostgreSQL server started by the tests."""
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
    else:
        url = f"sqlite:///{tmp_path}/state.db"
    s = StateStore(url)
    yield s
    s.close()


def fill(store: StateStore, n: int = 5) -> None:
    for i in range(n):
        store.audit("alias.set", f"m@a{i}", {"version": i}, who="tester")


def test_step_records_inputs_outputs_and_status(store: StateStore) -> None:
    with store.step("run1", "train", {"a": 1}) as rec:
        rec.inputs["snapshot"] = "d@0"
        rec.outputs = {"mlflow_run_id": "abc"}
        rec.timings = {"user_fit": 0.5}
    [row] = store.steps(run_id="run1")
    assert row.status == "succeeded"
    assert row.inputs == {"a": 1, "snapshot": "d@0"}
    assert row.outputs == {"mlflow_run_id": "abc"}
    assert row.timings == {"user_fit": 0.5}
    assert row.duration_s is not None and row.duration_s >= 0


def test_gate_failure_and_crash_are_recorded(store: StateStore) -> None:
    with pytest.raises(GateFailed), store.step("r", "validate", {}):
        raise GateFailed("validation", ["column 'x' missing"])
    with pytest.raises(ZeroDivisionError), store.step("r", "train", {}):
        _ = 1 / 0
    statuses = {s.stage: (s.status, s.error) for s in store.steps(run_id="r")}
    assert statuses["validate"][0] == "gate_failed" and "column 'x'" in statuses["validate"][1]
    assert statuses["train"][0] == "failed" and "ZeroDivisionError" in statuses["train"][1]


def test_intact_chain_verifies(store: StateStore) -> None:
    fill(store)
    assert store.verify_audit() == []
    assert [e.seq for e in store.events()] == [1, 2, 3, 4, 5]


def test_edited_entry_is_detected(store: StateStore) -> None:
    fill(store)
    with store.engine.begin() as c:
        c.execute(update(audit_events).where(audit_events.c.seq == 3).values(actor="mallory"))
    assert any("entry 3" in p and "modified" in p for p in store.verify_audit())


def test_deleted_entry_is_detected(store: StateStore) -> None:
    fill(store)
    with store.engine.begin() as c:
        c.execute(delete(audit_events).where(audit_events.c.seq == 2))
    assert any("entry 2 is missing" in p for p in store.verify_audit())


def test_deleted_newest_entry_is_detected(store: StateStore) -> None:
    fill(store)
    with store.engine.begin() as c:
        c.execute(delete(audit_events).where(audit_events.c.seq == 5))
    assert any("head records 5" in p for p in store.verify_audit())


def test_reordered_entries_are_detected(store: StateStore) -> None:
    fill(store)
    with store.engine.begin() as c:  # swap the content of entries 2 and 3, keeping seq order
        rows = {r.seq: r for r in c.execute(text("select * from audit_events where seq in (2,3)"))}
        for seq, other in ((2, 3), (3, 2)):
            r = rows[other]
            c.execute(
                update(audit_events)
                .where(audit_events.c.seq == seq)
                .values(
                    at=r.at,
                    action=r.action,
                    subject=r.subject,
                    details=r.details,
                    prev_hash=r.prev_hash,
                    hash=r.hash,
                )
            )
    assert store.verify_audit() != []


def test_concurrent_appends_keep_one_chain(store: StateStore) -> None:
    def worker(k: int) -> None:
        for i in range(10):
            store.audit("test.event", f"w{k}", {"i": i}, who="t")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.events()) == 40
    assert store.verify_audit() == []


def test_unreachable_store_is_a_clear_error() -> None:
    with pytest.raises(StateError, match=r"state\.url"):
        StateStore("postgresql+psycopg://u:secret@127.0.0.1:1/db")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
        min_size=1,
        max_size=6,
    ),
    st.data(),
)
def test_any_single_edit_breaks_the_chain(tmp_path_factory, details, data) -> None:
    s = StateStore(f"sqlite:///{tmp_path_factory.mktemp('s')}/state.db")
    for d in details:
        s.audit("x", "y", d, who="t")
    seq = data.draw(st.integers(1, len(details)))
    with s.engine.begin() as c:
        c.execute(update(audit_events).where(audit_events.c.seq == seq).values(subject="z"))
    assert s.verify_audit() != []
    s.close()


def test_truncation_with_a_rewritten_head_is_caught_by_an_anchor(store: StateStore) -> None:
    """Delete the newest entry and rewrite the head to match: the chain alone looks intact;
    an anchor recorded outside the database (seq and hash of entry 5) does not."""
    fill(store)
    last, before = store.events()[-1], store.events()[-2]
    anchors = [("the tag on m:1", last.seq, last.hash)]
    assert store.verify_audit(anchors) == []
    with store.engine.begin() as c:
        c.execute(delete(audit_events).where(audit_events.c.seq == 5))
        c.execute(update(audit_head).values(count=before.seq, hash=before.hash))
    assert store.verify_audit() == []
    [problem] = store.verify_audit(anchors)
    assert "the tag on m:1 records audit entry 5" in problem and "no such entry" in problem


def test_events_in_a_locked_block_are_written_with_it_or_not_at_all(store: StateStore) -> None:
    fill(store, 2)
    with store.locked() as conn:
        store.audit("alias.set", "m@c", {"version": 3}, who="t", conn=conn)
    with pytest.raises(ZeroDivisionError), store.locked() as conn:
        store.audit("alias.set", "m@c", {"version": 4}, who="t", conn=conn)
        _ = 1 / 0
    assert [e.details.get("version") for e in store.events()] == [0, 1, 3]
    assert store.verify_audit() == []


def test_a_running_step_whose_process_died_is_marked_failed(store: StateStore) -> None:
    """A real process opens a step and SIGKILLs itself: the row stays `running` until a
    later command sees that its pid is gone."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from shipml.state.store import StateStore\n"
            "with StateStore(sys.argv[1]).step('dead', 'register', {}):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
            store.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with store.step("alive", "train", {}):
        [dead] = store.recover_steps()  # this process's own running step is left alone
        assert {s.run_id: s.status for s in store.steps()} == {
            "dead": "failed",
            "alive": "running",
        }
    assert dead.run_id == "dead" and "ended without recording an outcome" in (dead.error or "")
    assert store.recover_steps() == []


def test_a_store_made_before_steps_recorded_pids_gains_the_columns(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path}/old.db"
    with sqlite3.connect(tmp_path / "old.db") as c:
        c.execute(
            "CREATE TABLE step_runs (id VARCHAR(36) PRIMARY KEY, run_id VARCHAR(36) NOT NULL, "
            "stage VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, started_at VARCHAR(32) "
            "NOT NULL, finished_at VARCHAR(32), duration_s FLOAT, inputs TEXT NOT NULL, "
            "inputs_hash VARCHAR(80) NOT NULL, outputs TEXT, outputs_hash VARCHAR(80), "
            "timings TEXT, error TEXT)"
        )
    s = StateStore(url)
    with s.step("r", "train", {}):
        pass
    assert [x.status for x in s.steps()] == ["succeeded"]
    s.close()
