"""Small frames and source files shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture
def loans() -> pd.DataFrame:
    """Ints, floats with NaN, strings with a missing value, bools: what a CSV gives."""
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "income": [52000.5, float("nan"), 31000.0, 87000.25],
            "purpose": ["car", None, "house", "car"],
            "defaulted": [False, True, False, False],
        }
    )


@pytest.fixture
def loans_csv(tmp_path: Path, loans: pd.DataFrame) -> Path:
    path = tmp_path / "loans.csv"
    loans.to_csv(path, index=False)
    return path
