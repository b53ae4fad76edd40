"""Evaluate a trained binary classifier on the held-out split: metrics, gates, report.

    result = evaluate(model, X_test, y_test, config.evaluation, positive_label=...)
    if not result.passed:
        raise GateFailed("evaluation", result.failures)

Heavy libraries (scikit-learn, fairlearn, matplotlib, pandas) are imported inside the
functions that use them, so importing this package is cheap.
"""

from shipml.evaluate.gates import compare_to_champion, evaluate
from shipml.evaluate.metrics import (
    LOWER_IS_BETTER,
    METRICS,
    compute_metrics,
    encode_target,
    positive_index,
    positive_proba,
)
from shipml.evaluate.report import write_report
from shipml.evaluate.result import EvaluationResult, GateResult

__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "EvaluationResult",
    "GateResult",
    "compare_to_champion",
    "compute_metrics",
    "encode_target",
    "evaluate",
    "positive_index",
    "positive_proba",
    "write_report",
]
