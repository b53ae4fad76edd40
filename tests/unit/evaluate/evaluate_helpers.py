"""Config helper and deliberately flawed models for the evaluation tests."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from shipml.config import EvaluationConfig

FEATURES = ["x0", "x1", "x2", "x3"]


def config(**sections: Any) -> EvaluationConfig:
    """An EvaluationConfig with every optional gate off, then `sections` applied."""
    raw: dict[str, Any] = {
        "thresholds": {},
        "latency": {"enabled": False},
        "robustness": {"enabled": False},
        "champion": {"enabled": False},
    }
    raw.update(sections)
    return EvaluationConfig.model_validate(raw)


class _Fixed:
    """A fitted binary classifier whose probability is a function of the features."""

    classes_ = np.array([0, 1])

    def score(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(np.asarray(self.score(X), dtype=float), 0.0, 1.0)
        return np.column_stack([1 - p, p])


class ByGroup(_Fixed):
    """Biased: predicts positive for group 'a' and negative for everyone else."""

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(X["group"].to_numpy() == "a", 0.9, 0.1)


class Brittle(_Fixed):
    """Its probability is the 4th-decimal digits of x0: any noise scrambles it."""

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return np.mod(np.abs(X["x0"].to_numpy(dtype=float)) * 1e4, 1.0)


class Constant(_Fixed):
    def score(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), 0.5)


class Slow:
    """Wraps a model and sleeps in every predict_proba call."""

    def __init__(self, model: Any, seconds: float) -> None:
        self.model, self.seconds = model, seconds
        self.classes_ = model.classes_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        time.sleep(self.seconds)
        return np.asarray(self.model.predict_proba(X))


class Stalled:
    """A fast model on a busy machine: every `every`-th call stalls, whatever the row."""

    def __init__(self, model: Any, seconds: float, every: int) -> None:
        self.model, self.seconds, self.every, self.calls = model, seconds, every, 0
        self.classes_ = model.classes_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        if self.calls % self.every == 0:
            time.sleep(self.seconds)
        return np.asarray(self.model.predict_proba(X))


class Raising(_Fixed):
    def score(self, X: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("feature 'x9' is missing\nsecond line of the traceback text")


def burn(units: int) -> int:
    """Pure-Python CPU work (holds the GIL, no sleep): cost grows linearly with `units`."""
    total = 0
    for i in range(units * 1000):
        total += i * i
    return total


class Burning:
    """Wraps a model and burns `units` of CPU in every predict_proba call."""

    def __init__(self, model: Any, units: int) -> None:
        self.model, self.units = model, units
        self.classes_ = model.classes_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        burn(self.units)
        return np.asarray(self.model.predict_proba(X))


def units_for(ms: float) -> int:
    """Units of `burn` that take about `ms` of this thread's CPU time here."""
    start = time.thread_time()
    burn(50)
    per_unit = (time.thread_time() - start) / 50
    return max(1, round(ms / 1000 / per_unit))
