"""A non-credit tabular project, so nothing is tuned to the flagship example.

The project ships no expectation suite: the test makes it the way a new user would, with
`shipml ingest` and `shipml expectations suggest`, then runs the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import copy_project, shipml

pytestmark = pytest.mark.slow


def test_breast_cancer_project_end_to_end(tmp_path: Path) -> None:
    project = copy_project("cancer", tmp_path)
    assert not (project / "expectations").exists()

    assert shipml(project, "ingest").code == 0
    suggested = shipml(project, "expectations", "suggest", "--json")
    assert suggested.code == 0, suggested.stderr
    assert suggested.json["expectations"] > 30  # 30 features + target + table checks

    out = shipml(project, "run", "--json")

    assert out.code == 0, out.stdout + out.stderr
    steps = {s["stage"]: s for s in out.json["steps"]}
    assert steps["ingest"]["outputs"]["created"] is False  # run reused the snapshot
    assert steps["evaluate"]["outputs"]["metrics"]["roc_auc"] > 0.9
    assert steps["register"]["outputs"]["model"] == "cancer"
    assert steps["register"]["outputs"]["version"] == 1


def test_a_worse_candidate_than_the_champion_is_not_registered(tmp_path: Path) -> None:
    """The champion gate at pipeline level: promote a model, then train a crippled one."""
    project = copy_project("cancer", tmp_path)
    shipml(project, "ingest")
    shipml(project, "expectations", "suggest")
    assert shipml(project, "run").code == 0
    assert shipml(project, "promote", "cancer", "1", "-r", "baseline").code == 0

    # One shallow tree with a single boosting step: much worse than the champion.
    worse = {
        "SHIPML_TRAINING__PARAMS": "{n_estimators: 1, max_depth: 1}",
        "SHIPML_EVALUATION__THRESHOLDS": "{}",
    }
    out = shipml(project, "run", "--json", env=worse)

    assert out.code == 1
    assert out.json["failure"]["stage"] == "evaluation"
    assert any("champion" in r for r in out.json["failure"]["reasons"])
    versions = shipml(project, "registry", "versions", "--json").json
    assert [v["version"] for v in versions] == [1]
