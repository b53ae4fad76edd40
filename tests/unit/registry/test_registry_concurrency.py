"""Registrations at once, in real processes on the same SQLite stores.

The candidate is defined as the highest registered version. The race that broke it: a slow
registrar creates version 1, others create and alias 2..N, then the slow one moves the alias
back to 1. The slow registrar is made slow at MLflow's boundary (its create_model_version
returns only after the others had their chance) and its version is the first, so the race
is set up on every run, not left to chance (see _register_process.py).
"""

from __future__ import annotations

import time

import pytest

from shipml.registry.models import version_for_alias
from tests.unit.registry.conftest import Reg
from tests.unit.registry.test_registry_recovery import registered_process, verify

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("n", [3, 6])
def test_concurrent_registrations_all_finish_and_the_candidate_is_the_highest(
    reg: Reg, n: int
) -> None:
    ready = reg.project.root / "ready"
    ready.mkdir()
    slow = registered_process(reg, "slow", READY_DIR=str(ready), SLOW_AFTER_CREATE=str(n - 1))
    others = [registered_process(reg, f"r{i}", READY_DIR=str(ready)) for i in range(n - 1)]
    deadline = time.monotonic() + 600
    results = []
    for process in [slow, *others]:
        out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        results.append((process.returncode, out.strip(), err[-2000:]))
    assert all(code == 0 for code, _, _ in results), results
    versions = sorted(int(out) for _, out, _ in results)
    assert versions == list(range(1, n + 1))

    candidate = version_for_alias(reg.project, "candidate")
    assert candidate == n  # the highest registered version
    moves = reg.store.events(action="alias.set")
    assert moves[-1].details["version"] == candidate  # the log agrees with MLflow
    held = [e.details["version"] for e in moves]
    assert held == sorted(held)  # and it only ever moved up
    assert len(reg.store.events(action="model.registered")) == n
    code, report = verify(reg)
    assert code == 0, report
    assert {s.status for s in reg.store.steps(stage="register")} == {"succeeded"}
