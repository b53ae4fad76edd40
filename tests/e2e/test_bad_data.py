"""Bad data is stopped by validation: exit 1, the column named, nothing registered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.conftest import copy_project, shipml

pytestmark = pytest.mark.slow

SOURCE = "data/lending_club.csv.gz"


def drop_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["annual_inc"])


def wrong_type(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["int_rate"] = frame["int_rate"].map(lambda v: f"{v}%")
    return frame


def five_percent_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    rows = np.random.default_rng(0).choice(len(frame), size=len(frame) // 20, replace=False)
    frame.loc[rows, "funded_amnt"] = np.nan
    return frame


@pytest.mark.parametrize(
    ("corrupt", "column"),
    [(drop_column, "annual_inc"), (wrong_type, "int_rate"), (five_percent_nulls, "funded_amnt")],
    ids=["missing-column", "wrong-type", "5pct-nulls"],
)
def test_bad_data_fails_validation_and_registers_nothing(
    tmp_path: Path, corrupt: Callable[[pd.DataFrame], pd.DataFrame], column: str
) -> None:
    project = copy_project("credit", tmp_path)
    source = project / SOURCE
    corrupt(pd.read_csv(source)).to_csv(source, index=False)

    out = shipml(project, "run", "--json")

    assert out.code == 1, out.stdout + out.stderr
    failure = out.json["failure"]
    assert failure["stage"] == "validation"
    assert any(column in reason for reason in failure["reasons"]), failure["reasons"]
    assert [s["stage"] for s in out.json["steps"]] == ["ingest", "validate"]
    assert not (project / ".shipml" / "mlflow.db").exists()  # training never started

    human = shipml(project, "validate")
    assert human.code == 1 and column in human.stderr
