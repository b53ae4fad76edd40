"""Make the project's own modules (features.py, train.py) importable, and share one model."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

PROJECT = Path(__file__).resolve().parents[1]


def project_module(name: str) -> ModuleType:
    """Import `name` from this project, even if another project's module of that name (say
    another train.py, in a shared pytest run) was imported first."""
    cached = sys.modules.get(name)
    if cached is not None and Path(getattr(cached, "__file__", "") or "").parent != PROJECT:
        del sys.modules[name]
    if str(PROJECT) in sys.path:
        sys.path.remove(str(PROJECT))
    sys.path.insert(0, str(PROJECT))
    return importlib.import_module(name)


project_module("features")  # the test modules import it by name

TARGET = "Class"


@pytest.fixture(scope="session")
def loans() -> pd.DataFrame:
    """A fixed sample of 3,000 loans, stratified by Class."""
    data = pd.read_csv(PROJECT / "data" / "lending_club.csv.gz")
    return (
        data.groupby(TARGET, group_keys=False)
        .sample(frac=3000 / len(data), random_state=0)
        .reset_index(drop=True)
    )


@pytest.fixture(scope="session")
def model(loans: pd.DataFrame):
    return project_module("train").train(loans.copy(), {"target": TARGET, "seed": 0})


@pytest.fixture(scope="session")
def features(loans: pd.DataFrame) -> pd.DataFrame:
    return loans.drop(columns=[TARGET, "loan_id"])
