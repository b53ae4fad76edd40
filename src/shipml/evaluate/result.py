"""The records an evaluation produces, and the one-line verdicts inside them.

A `GateResult` is one check of a value against a limit; `bound`, `skipped` and `raised` build
the three kinds (a comparison, a gate that does not apply, a model that raised) so that every
gate words its `detail` the same way: "roc_auc 0.612 < min 0.700 (short by 0.088)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EvaluationResult", "GateResult"]

EPS = 1e-12
"""Slack for float round-off when a value sits exactly on its limit."""


@dataclass(frozen=True)
class GateResult:
    """One check: `value` against `limit`, explained in one readable line."""

    name: str
    passed: bool
    value: float | None
    limit: float | None
    detail: str
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "skipped": self.skipped,
            "value": _finite(self.value),
            "limit": _finite(self.limit),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of the candidate (and champion) on the held-out split, and every gate's verdict.

    `passed` is derived: true when no gate failed.
    """

    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    gates: list[GateResult]
    decision_threshold: float = 0.5
    positive_label: Any = None
    n_samples: int = 0
    passed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", all(g.passed for g in self.gates))

    @property
    def failures(self) -> list[str]:
        """One line per failed gate, ready for `GateFailed("evaluation", result.failures)`."""
        return [f"{g.name}: {g.detail}" for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (undefined metrics become null)."""
        champion = self.champion_metrics
        return {
            "passed": self.passed,
            "n_samples": self.n_samples,
            "positive_label": self.positive_label,
            "decision_threshold": self.decision_threshold,
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "champion_metrics": None
            if champion is None
            else {k: _finite(v) for k, v in champion.items()},
            "gates": [g.to_dict() for g in self.gates],
        }


def bound(
    name: str,
    what: str,
    value: float,
    limit: float,
    kind: Literal["min", "max"],
    *,
    unit: str = "",
    context: str = "",
) -> GateResult:
    """`value` checked against `limit` as a minimum or a maximum, worded in one line."""
    digits = 1 if unit else 3
    lim = f"{kind} {limit:.{digits}f}{unit}"
    if math.isnan(value):
        return GateResult(name, False, value, limit, f"{what} is undefined, so {lim} is not met")
    val = f"{what} {value:.{digits}f}{unit}"
    gap = f"{abs(value - limit):.{digits}f}{unit}"
    if kind == "min":
        passed = value >= limit - EPS
        line = f"{val} >= {lim}" if passed else f"{val} < {lim} (short by {gap})"
    else:
        passed = value <= limit + EPS
        line = f"{val} <= {lim}" if passed else f"{val} > {lim} (over by {gap})"
    return GateResult(name, passed, value, limit, line + context)


def skipped(name: str, why: str) -> GateResult:
    return GateResult(name, True, None, None, f"skipped: {why}", skipped=True)


def raised(name: str, what: str, exc: Exception) -> GateResult:
    message = str(exc).strip().splitlines()
    first = message[0] if message else ""
    return GateResult(name, False, None, None, f"{what}: {type(exc).__name__}: {first}")


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value
