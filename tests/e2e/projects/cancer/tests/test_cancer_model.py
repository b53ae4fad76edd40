"""Properties of the diagnosis model on generated measurements."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

fast = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _measurements(samples: pd.DataFrame) -> st.SearchStrategy[pd.DataFrame]:
    features = samples.drop(columns=["target"])
    cell = {
        c: st.one_of(
            st.floats(min_value=0, max_value=float(features[c].max()) * 2, allow_nan=False),
            st.just(float("nan")),
        )
        for c in features.columns
    }
    row = st.fixed_dictionaries(cell)
    return st.lists(row, min_size=1, max_size=10).map(
        lambda rows: pd.DataFrame(rows, columns=features.columns)
    )


def test_train_returns_a_classifier_of_both_labels(model) -> None:
    assert callable(model.predict_proba)
    assert sorted(model.classes_.tolist()) == [0, 1]


@fast
@given(data=st.data())
def test_probabilities_are_valid_and_repeatable(model, samples, data) -> None:
    frame = data.draw(_measurements(samples))
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame), 2)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba, model.predict_proba(frame.copy()))
