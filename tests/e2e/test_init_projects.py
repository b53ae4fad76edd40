"""`shipml init` then `shipml run`, as a new user does it, on three real tabular datasets:
the credit example's Lending Club loans (text and numeric columns, a key, 5% positives), the
breast-cancer measurements (numeric only, 0/1 labels) and two cultivars of scikit-learn's
wine data (written to a CSV from the copy scikit-learn ships; the labels name no event, so
init refuses until --positive-label settles it). Nothing is edited between the two commands.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import PROJECTS, REPO, init, shipml

pytestmark = pytest.mark.slow


def _wine(path: Path) -> Path:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame  # read from the CSV inside scikit-learn
    frame = frame[frame["target"] < 2].rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino"})
    frame.to_csv(path, index=False)
    return path


DATASETS = {
    "credit": (lambda _: REPO / "examples" / "credit" / "data" / "lending_club.csv.gz", []),
    "cancer": (lambda _: PROJECTS["cancer"] / "data" / "cancer.csv", []),
    "wine": (lambda tmp: _wine(tmp / "wine.csv"), ["--positive-label", "grignolino"]),
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_init_then_run_passes(tmp_path: Path, name: str) -> None:
    source, flags = DATASETS[name]
    data = source(tmp_path)
    project = tmp_path / name
    if flags:  # without the flag: exit 2, naming the labels and the flag, nothing written
        refused = init(project, "--data", str(data))
        assert refused.code == 2 and "--positive-label" in refused.stderr, refused.stderr
        assert not (project / "shipml.yaml").exists()

    t0 = time.perf_counter()
    made = init(project, "--data", str(data), "--ci", "both", *flags, "--json")
    t1 = time.perf_counter()
    assert made.code == 0, made.stdout + made.stderr
    out = shipml(project, "run", "--json")
    t2 = time.perf_counter()

    assert out.code == 0, out.stdout + out.stderr
    steps = {s["stage"]: s for s in out.json["steps"]}
    assert steps["ingest"]["outputs"]["created"] is False  # init's first snapshot is reused
    assert steps["register"]["outputs"]["version"] == 1
    print(f"{name}: init {t1 - t0:.1f} s, first run {t2 - t1:.1f} s")
