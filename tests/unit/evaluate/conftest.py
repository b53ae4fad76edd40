"""Small synthetic data and fitted models shared by the evaluation tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.unit.evaluate.evaluate_helpers import FEATURES


@pytest.fixture(scope="session")
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """(X_train, y_train, X_test, y_test); y is 0/1, X has four numeric features and 'group'."""
    X, y = make_classification(
        n_samples=1600,
        n_features=4,
        n_informative=3,
        n_redundant=1,
        class_sep=1.5,
        random_state=0,
    )
    frame = pd.DataFrame(X, columns=FEATURES)
    frame["group"] = np.random.default_rng(1).choice(["a", "b"], size=len(frame))
    target = pd.Series(y, name="target")
    test = slice(600, None)
    return (
        frame[:600],
        target[:600],
        frame[test].reset_index(drop=True),
        target[test].reset_index(drop=True),
    )


@pytest.fixture(scope="session")
def logreg(data: Any) -> Any:
    """A good model that raises on NaN, like most scikit-learn estimators."""
    X, y, _, _ = data
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X[FEATURES], y)


@pytest.fixture(scope="session")
def imputing(data: Any) -> Any:
    """A good model that copes with missing values."""
    X, y, _, _ = data
    return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(
        X[FEATURES], y
    )


@pytest.fixture(scope="session")
def dummy(data: Any) -> Any:
    """A useless model: always the training prior."""
    X, y, _, _ = data
    return DummyClassifier(strategy="prior").fit(X[FEATURES], y)
