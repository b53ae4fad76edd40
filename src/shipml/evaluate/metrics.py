"""Binary-classification metrics on the probability of the positive class.

Every function here works on two plain arrays: `y_true` of 0/1 (1 = the positive label) and
`proba`, the positive-class column of `predict_proba`. `positive_index`, `positive_proba` and
`encode_target` turn a fitted model and its original labels into those arrays.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, get_args

from shipml.config import Metric
from shipml.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "compute_metrics",
    "encode_target",
    "positive_index",
    "positive_proba",
]

METRICS: tuple[str, ...] = get_args(Metric)
"""Names `compute_metrics` returns, in order; the valid keys of evaluation.thresholds."""

LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "brier"})


def positive_index(model: Any, positive_label: object = None) -> int:
    """The column of `model.predict_proba` that holds the positive label's probability.

    Without a `positive_label` this is `classes_[1]`, scikit-learn's order for binary labels.
    """
    classes = _classes(model)
    if positive_label is None:
        return 1
    for i, label in enumerate(classes):
        if python_value(label) == positive_label:
            return i
    # YAML gives 1 where the data has "1" (or the reverse): accept a unique textual match.
    textual = [i for i, label in enumerate(classes) if str(label) == str(positive_label)]
    if len(textual) == 1:
        return textual[0]
    raise UsageError(
        f"positive label {positive_label!r} is not one of the model's classes "
        f"{[python_value(c) for c in classes]}; set training.positive_label to one of them"
    )


def positive_proba(model: Any, X: pd.DataFrame, positive_label: object = None) -> np.ndarray:
    """`model.predict_proba(X)` reduced to the positive label's column, as floats."""
    import numpy as np

    index = positive_index(model, positive_label)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 2:
        raise UsageError(
            f"predict_proba returned shape {proba.shape}, expected (n_rows, 2); "
            f"shipml evaluates binary classifiers only"
        )
    return proba[:, index]


def encode_target(y: npt.ArrayLike, model: Any, positive_label: object = None) -> np.ndarray:
    """The labels `y` as 0/1, with 1 for the model's positive class."""
    import numpy as np

    classes = _classes(model)
    values = np.asarray(y)
    unseen = set(np.unique(values).tolist()) - {python_value(c) for c in classes}
    if unseen:
        raise UsageError(
            f"the labels contain {sorted(map(repr, unseen))}, which the model never saw "
            f"(classes_ = {[python_value(c) for c in classes]}); evaluate on the target "
            f"column the model was trained on"
        )
    positive = classes[positive_index(model, positive_label)]
    return (values == positive).astype(int)


def compute_metrics(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, threshold: float = 0.5
) -> dict[str, float]:
    """Metrics of positive-class probabilities `proba` against 0/1 labels `y_true`.

    A row is predicted positive when `proba >= threshold`. `roc_auc` is NaN when `y_true` holds
    only one class (it is undefined there); every other metric is always a number.
    """
    import numpy as np
    from sklearn import metrics as skm

    y, p = check_arrays(y_true, proba)
    if not 0 < threshold < 1:
        raise UsageError(f"threshold must be between 0 and 1 (exclusive), got {threshold}")
    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else math.nan,
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p, labels=[0, 1])),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "positive_rate": float(pred.mean()),
    }


def check_arrays(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """`y_true` as ints and `proba` as floats, or a UsageError saying what is wrong with them."""
    import numpy as np

    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype=float).ravel()
    if len(y) != len(p):
        raise UsageError(f"y_true has {len(y)} rows but proba has {len(p)}; pass matching arrays")
    if len(y) == 0:
        raise UsageError("no rows to evaluate; the held-out split is empty")
    labels = set(np.unique(y).tolist())
    if not labels <= {0, 1}:
        raise UsageError(
            f"y_true must be 0/1, got values {sorted(map(repr, labels))[:5]}; "
            f"encode it with encode_target(y, model, positive_label)"
        )
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise UsageError("proba must be finite probabilities in [0, 1]; pass predict_proba output")
    return y.astype(int), p


def _classes(model: Any) -> list[Any]:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise UsageError(
            f"{type(model).__name__} has no classes_; evaluate a fitted classifier "
            f"(a Pipeline ending in one works)"
        )
    listed = list(classes)
    if len(listed) != 2:
        raise UsageError(
            f"the model has {len(listed)} classes {[python_value(c) for c in listed]}; "
            f"shipml evaluates binary classifiers only"
        )
    return listed


def python_value(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so it prints and serialises cleanly)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
