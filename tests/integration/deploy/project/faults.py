"""Candidates with a known fault, to prove that the rollout analysis catches each one.

fail10: raises on rows with x1 below -100, which the test traffic sends in 10% of requests
(the training data never holds such rows, so evaluation passes);
burn: every call computes ~30 ms longer (a pure-numpy loop, CPU-bound, as a heavier
feature pipeline would); heavy: a third of burn's
extra work, registered twice as two versions of equal cost; shift: scores pushed towards 1.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class Faulty(ClassifierMixin, BaseEstimator):
    def __init__(self, model=None, fault="none"):
        self.model = model
        self.fault = fault

    def fit(self, X, y):
        self.model.fit(X, y)
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, X):
        if self.fault == "fail10" and (np.asarray(X["x1"]) < -100).any():
            raise ValueError("fault injected: x1 below -100")
        if self.fault == "burn":
            _burn()
        if self.fault == "heavy":  # a costlier pipeline, but the same for two versions
            _burn(rounds=1000)
        proba = self.model.predict_proba(X)
        if self.fault == "shift":
            positive = 0.5 + 0.5 * proba[:, 1]
            proba = np.column_stack([1 - positive, positive])
        return proba

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def _burn(rounds=3000):
    """About 30 ms of CPU on this machine, whatever the number of rows."""
    x = np.linspace(0.0, 1.0, 4096)
    for _ in range(rounds):
        x = np.sqrt(x * x + 1.0) - 0.5
    return x
