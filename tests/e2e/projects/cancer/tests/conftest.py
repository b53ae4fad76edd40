"""Make the project's train.py importable, and train it once per session."""

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


@pytest.fixture(scope="session")
def samples() -> pd.DataFrame:
    return pd.read_csv(PROJECT / "data" / "cancer.csv")


@pytest.fixture(scope="session")
def model(samples: pd.DataFrame):
    return project_module("train").train(samples.copy(), {"target": "target", "seed": 0})
