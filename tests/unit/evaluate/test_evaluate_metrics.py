from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from shipml.errors import UsageError
from shipml.evaluate import compute_metrics, encode_target, positive_index, positive_proba


def fitted(labels: list[Any]) -> LogisticRegression:
    X = pd.DataFrame({"x": np.arange(len(labels), dtype=float)})
    return LogisticRegression().fit(X, labels)


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    p = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1)
    pred = (p >= 0.4).astype(int)

    got = compute_metrics(y, p, threshold=0.4)

    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["positive_rate"] == pytest.approx(pred.mean())


def test_a_probability_equal_to_the_threshold_counts_as_positive() -> None:
    got = compute_metrics([0, 1], [0.3, 0.3], threshold=0.3)
    assert got["positive_rate"] == 1.0
    assert got["recall"] == 1.0


def test_roc_auc_is_nan_when_labels_hold_one_class() -> None:
    got = compute_metrics([1, 1, 1], [0.2, 0.7, 0.9], threshold=0.5)
    assert math.isnan(got["roc_auc"])
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert all(math.isfinite(v) for k, v in got.items() if k != "roc_auc")


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.5], "y_true has 2 rows but proba has 1"),
        ([], [], "empty"),
        ([0, 2], [0.1, 0.9], "must be 0/1"),
        ([0, 1], [0.1, 1.5], "probabilities in [0, 1]"),
        ([0, 1], [0.1, float("nan")], "probabilities in [0, 1]"),
    ],
)
def test_bad_inputs_are_usage_errors(y: list[int], p: list[float], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compute_metrics(y, p)


def test_positive_index_defaults_to_the_second_class() -> None:
    assert positive_index(fitted(["bad", "good", "bad", "good"])) == 1


def test_positive_index_finds_a_named_label() -> None:
    model = fitted(["bad", "good", "bad", "good"])
    assert positive_index(model, "bad") == 0
    assert positive_index(model, "good") == 1


def test_positive_index_accepts_a_label_written_as_text() -> None:
    model = fitted([0, 1, 0, 1])
    assert positive_index(model, "0") == 0


def test_positive_index_names_the_classes_when_the_label_is_unknown() -> None:
    model = fitted(["bad", "good", "bad", "good"])
    with pytest.raises(
        UsageError, match=r"'default' is not one of the model's classes \['bad', 'good'\]"
    ):
        positive_index(model, "default")


def test_positive_index_needs_a_fitted_binary_classifier() -> None:
    with pytest.raises(UsageError, match="no classes_"):
        positive_index(LogisticRegression())
    with pytest.raises(UsageError, match="3 classes"):
        positive_index(fitted([0, 1, 2, 0, 1, 2]))


def test_positive_proba_and_encode_target_follow_the_positive_label() -> None:
    labels = ["bad", "good", "bad", "good", "good", "bad"]
    model = fitted(labels)
    X = pd.DataFrame({"x": np.arange(6, dtype=float)})

    assert encode_target(labels, model, "bad").tolist() == [1, 0, 1, 0, 0, 1]
    assert encode_target(labels, model).tolist() == [0, 1, 0, 1, 1, 0]
    np.testing.assert_allclose(positive_proba(model, X, "bad"), model.predict_proba(X)[:, 0])


def test_encode_target_rejects_labels_the_model_never_saw() -> None:
    model = fitted([0, 1, 0, 1])
    with pytest.raises(UsageError, match="never saw"):
        encode_target(["0", "1"], model)


@settings(deadline=None, max_examples=60)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.floats(0, 1, allow_nan=False)), min_size=1, max_size=60
    ),
    st.floats(0.01, 0.99),
)
def test_metrics_stay_in_their_ranges(rows: list[tuple[int, float]], threshold: float) -> None:
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])

    got = compute_metrics(y, p, threshold)

    for name in ("accuracy", "f1", "brier", "precision", "recall", "positive_rate"):
        assert 0.0 <= got[name] <= 1.0, name
    assert got["log_loss"] >= 0.0
    assert math.isnan(got["roc_auc"]) == (len(set(y.tolist())) < 2)
    if not math.isnan(got["roc_auc"]):
        assert 0.0 <= got["roc_auc"] <= 1.0
    assert got["brier"] == pytest.approx(float(np.mean((p - y) ** 2)))
    assert got["positive_rate"] == pytest.approx(float(np.mean(p >= threshold)))
