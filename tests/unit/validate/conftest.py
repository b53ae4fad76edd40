"""Shared frames and a suite suggested once per session (GX is slow to import and run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipml.config import SuggestConfig
from shipml.validate import suggest_suite, write_suite

ROWS = 200


def make_reference(rows: int = ROWS, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    emp = rng.uniform(0, 10, rows)
    emp[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "loan_id": np.arange(1000, 1000 + rows),
            "annual_inc": rng.normal(60_000, 15_000, rows).round(2),
            "grade": pd.Series(rng.choice(["A", "B", "C", "D"], rows), dtype="str"),
            "verified": rng.random(rows) > 0.5,
            "emp_length": emp,
            "bad": rng.integers(0, 2, rows),
        }
    )


@pytest.fixture(scope="session")
def reference() -> pd.DataFrame:
    return make_reference()


@pytest.fixture(scope="session")
def suite(reference: pd.DataFrame) -> dict:
    return suggest_suite(
        reference, name="credit", settings=SuggestConfig(), key="loan_id", target="bad"
    )


@pytest.fixture(scope="session")
def suite_path(suite: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "expectations" / "suite.json"
    write_suite(suite, path)
    return path


@pytest.fixture
def frame(reference: pd.DataFrame) -> pd.DataFrame:
    """A fresh copy each test may break."""
    return reference.copy()
