"""The gates a trained binary classifier must pass on the held-out split before registration.

`evaluate(model, X_test, y_test, config)` computes the metrics once and runs every gate in
`EvaluationConfig`: metric thresholds, fairness across groups, single-row latency, robustness
to noise and to missing values, and the comparison with the current champion. Each check is
one `GateResult` with a one-line `detail`; a gate that is off or cannot apply is reported as
skipped (and passed), so the report always lists every gate. A model that raises inside a
gate fails that gate with the exception's message; it never crashes `evaluate`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shipml.errors import UsageError
from shipml.evaluate.metrics import (
    LOWER_IS_BETTER,
    compute_metrics,
    encode_target,
    positive_index,
    positive_proba,
    python_value,
)
from shipml.evaluate.result import EPS, EvaluationResult, GateResult, bound, raised, skipped

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipml.config import (
        EvaluationConfig,
        FairnessGate,
        LatencyGate,
        Metric,
        RobustnessGate,
        Threshold,
    )

__all__ = ["compare_to_champion", "evaluate"]

_WARMUP = 5  # single-row calls made before latency is measured
_LATENCY_ROUNDS = 3


def evaluate(
    model: Any,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    config: EvaluationConfig,
    *,
    positive_label: object = None,
    sensitive: pd.Series | None = None,
    champion: Any = None,
    seed: int = 0,
) -> EvaluationResult:
    """Score `model` on the held-out split and run every gate of `config`.

    `sensitive` holds the group of each row for the fairness gate; when it is None and the
    configured column is among `X_test`'s columns, that column is used. `seed` fixes the rows
    timed for latency and the noise and missing cells of the robustness gate.
    """
    import numpy as np

    if len(X_test) != len(y_test):
        raise UsageError(f"X_test has {len(X_test)} rows but y_test has {len(y_test)}")
    y = encode_target(y_test, model, positive_label)
    label = python_value(model.classes_[positive_index(model, positive_label)])
    proba = positive_proba(model, X_test, label)
    metrics = compute_metrics(y, proba, config.decision_threshold)
    rng = np.random.default_rng(seed)

    gates = _threshold_gates(metrics, config.thresholds)
    gates += _fairness_gates(
        y, proba >= config.decision_threshold, X_test, sensitive, config.fairness
    )
    gates.append(_latency_gate(model, X_test, config.latency, rng))
    gates += _robustness_gates(model, X_test, proba, label, config.robustness, rng)

    champion_metrics: dict[str, float] | None = None
    metric, tolerance = config.champion.metric, config.champion.tolerance
    if not config.champion.enabled:
        gates.append(skipped("champion", "evaluation.champion.enabled is false"))
    elif champion is None:
        gates.append(skipped("champion", "no champion to compare with yet"))
    else:
        try:
            champ_proba = positive_proba(champion, X_test, label)
        except Exception as exc:
            gates.append(raised("champion", "the champion raised on X_test", exc))
        else:
            champion_metrics = compute_metrics(y, champ_proba, config.decision_threshold)
            gates.append(
                compare_to_champion(metric, metrics[metric], champion_metrics[metric], tolerance)
            )
    return EvaluationResult(
        metrics=metrics,
        champion_metrics=champion_metrics,
        gates=gates,
        decision_threshold=config.decision_threshold,
        positive_label=label,
        n_samples=len(y),
    )


def compare_to_champion(
    metric: str, candidate: float, champion: float, tolerance: float
) -> GateResult:
    """Pass when `candidate` is at most `tolerance` worse than `champion` on `metric`."""
    lower = metric in LOWER_IS_BETTER
    limit = champion + tolerance if lower else champion - tolerance
    if math.isnan(candidate) or math.isnan(champion):
        return GateResult("champion", False, candidate, limit, f"{metric} is undefined")
    worse_by = candidate - champion if lower else champion - candidate
    passed = worse_by <= tolerance + EPS
    head = f"{metric} {candidate:.3f} vs champion {champion:.3f}"
    if worse_by <= 0:
        detail = f"{head}: better by {-worse_by:.3f}"
    else:
        sign = "<=" if passed else ">"
        detail = f"{head}: worse by {worse_by:.3f} {sign} tolerance {tolerance:.3f}"
    return GateResult("champion", passed, candidate, limit, detail)


def _threshold_gates(
    metrics: dict[str, float], thresholds: Mapping[Metric, Threshold]
) -> list[GateResult]:
    gates = []
    for name, limits in thresholds.items():
        if limits.min is not None:
            gates.append(bound(f"threshold.{name}.min", name, metrics[name], limits.min, "min"))
        if limits.max is not None:
            gates.append(bound(f"threshold.{name}.max", name, metrics[name], limits.max, "max"))
    return gates or [skipped("thresholds", "no metric thresholds configured")]


def _fairness_gates(
    y: np.ndarray,
    pred: np.ndarray,
    X: pd.DataFrame,
    sensitive: pd.Series | None,
    cfg: FairnessGate,
) -> list[GateResult]:
    if cfg.sensitive is None:
        return [skipped("fairness", "evaluation.fairness.sensitive is not set")]
    if sensitive is None:
        if cfg.sensitive not in X.columns:
            raise UsageError(
                f"the fairness gate compares groups of '{cfg.sensitive}', which is not a "
                f"column of X_test; pass its values as sensitive= or unset "
                f"evaluation.fairness.sensitive"
            )
        sensitive = X[cfg.sensitive]
    if len(sensitive) != len(y):
        raise UsageError(f"sensitive has {len(sensitive)} rows but y_test has {len(y)}")
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    groups = sensitive.astype(object).fillna("<missing>").astype(str).to_numpy()
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        return [skipped("fairness", f"'{cfg.sensitive}' has a single group ({names[0]!r})")]
    rates = ", ".join(f"{g} {pred[groups == g].mean():.2f}" for g in names[:8])
    more = ", ..." if len(names) > 8 else ""
    context = f"; positive rate by {cfg.sensitive}: {rates}{more}"
    with warnings.catch_warnings():  # a group without positives makes sklearn warn
        warnings.simplefilter("ignore")
        dp = demographic_parity_difference(y, pred, sensitive_features=groups)
        eo = equalized_odds_difference(y, pred, sensitive_features=groups)
    what_dp, what_eo = "demographic_parity_difference", "equalized_odds_difference"
    dp_max, eo_max = cfg.max_demographic_parity_difference, cfg.max_equalized_odds_difference
    return [
        bound("fairness.demographic_parity", what_dp, float(dp), dp_max, "max", context=context),
        bound("fairness.equalized_odds", what_eo, float(eo), eo_max, "max", context=context),
    ]


def _latency_gate(
    model: Any, X: pd.DataFrame, cfg: LatencyGate, rng: np.random.Generator
) -> GateResult:
    import numpy as np

    if not cfg.enabled:
        return skipped("latency", "evaluation.latency.enabled is false")
    if len(X) == 0:
        return skipped("latency", "no rows to time")
    from shipml._timing import Stopwatch

    picks = rng.choice(len(X), size=cfg.samples, replace=len(X) < cfg.samples)
    rows = [X.iloc[[int(i)]] for i in picks]
    walls: list[float] = []
    rounds: list[list[float]] = []
    try:
        with Stopwatch() as watch:
            for row in rows[:_WARMUP]:
                model.predict_proba(row)
            for _ in range(_LATENCY_ROUNDS):
                own = []
                for row in rows:
                    wall, mine = watch.time(functools.partial(model.predict_proba, row))
                    walls.append(wall)
                    own.append(mine)
                rounds.append(own)
                if _p99_ms(rounds) <= cfg.max_p99_ms:
                    break  # within the limit: more rounds could only lower the figure
            exact = watch.exact
    except Exception as exc:
        return raised("latency", "the model raised on a single-row call", exc)
    p99_ms = _p99_ms(rounds)
    own_ms, wall_ms = float(np.median(rounds[0])) * 1000, float(np.median(walls)) * 1000
    measure = "own time (wall time less waits for a CPU)" if exact else "wall time"
    context = (
        f" of the model's {measure}, {len(rows)} single-row predict_proba calls, each the "
        f"fastest of {len(rounds)} try(s); median {own_ms:.2f} ms own, {wall_ms:.2f} ms wall"
    )
    result = bound("latency", "p99", p99_ms, cfg.max_p99_ms, "max", unit=" ms", context=context)
    if not result.passed:
        result = dataclasses.replace(
            result, detail=result.detail + "; raise evaluation.latency.max_p99_ms to allow it"
        )
    return result


def _p99_ms(rounds: list[list[float]]) -> float:
    """p99 over rows of each row's fastest call.

    Each call is timed as its own time (`shipml._timing`): a CPU-hungry neighbour makes
    every call wait for a core, which wall time counts and own time does not. What is left
    of the machine (a cache flushed, a page fault) hits a row now and then; taking each row's
    fastest try keeps the model's own tail and drops those. A slow model is slow on every
    try. Rounds are only repeated while over the limit, so a fast model is timed once.
    """
    import numpy as np

    fastest = np.min(np.asarray(rounds), axis=0)
    return float(np.percentile(fastest, 99)) * 1000


def _robustness_gates(
    model: Any,
    X: pd.DataFrame,
    proba: np.ndarray,
    label: object,
    cfg: RobustnessGate,
    rng: np.random.Generator,
) -> list[GateResult]:
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if not cfg.enabled:
        return [skipped("robustness", "evaluation.robustness.enabled is false")]
    numeric = [c for c in X.columns if is_numeric_dtype(X[c]) and not is_bool_dtype(X[c])]
    if not numeric or len(X) == 0:
        return [skipped("robustness", "X_test has no numeric columns to perturb")]
    values = np.column_stack([X[c].to_numpy(dtype=float, na_value=np.nan) for c in numeric])

    stds = np.nan_to_num(np.nanstd(values, axis=0, ddof=1) if len(X) > 1 else 0.0)
    noisy = values + rng.normal(size=values.shape) * cfg.noise * stds
    holes = values.copy()
    cells = rng.choice(holes.size, size=round(cfg.missing_fraction * holes.size), replace=False)
    holes.flat[cells] = np.nan

    cols = f"{len(numeric)} numeric column{'s' if len(numeric) > 1 else ''}"
    noise_how = f"with Gaussian noise of {cfg.noise:g}×std on {cols}"
    missing_how = f"with {cfg.missing_fraction:.0%} of the cells of {cols} missing"
    checks = [
        ("robustness.noise", noisy, cfg.max_noise_change, noise_how),
        ("robustness.missing", holes, cfg.max_missing_change, missing_how),
    ]
    gates = []
    for name, perturbed, limit, how in checks:
        changed = X.copy()
        for j, column in enumerate(numeric):
            changed[column] = perturbed[:, j]
        try:
            delta = float(np.mean(np.abs(positive_proba(model, changed, label) - proba)))
        except Exception as exc:
            gates.append(raised(name, f"the model raised {how}", exc))
            continue
        gates.append(bound(name, "mean |Δp|", delta, limit, "max", context=f" {how}"))
    return gates
