"""Whether a rollout step passes, judged from the servers' own metrics and inference log.

Pure and target-independent: `parse_metrics` turns `/metrics` text into per-variant counters,
`delta` takes the difference of two scrapes, `psi`, `agreement` and `accuracy` compare scores
from the inference log (`paired` lines two variants up), and `analyse` turns all of it into a
`Verdict`. A verdict is "pass" only when every configured check has enough data and is within
its limit; a missing or NaN value, too few requests or a server restart make it
"inconclusive", never "pass".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from shipml.errors import SourceError, UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Check",
    "Status",
    "Thresholds",
    "VariantStats",
    "Verdict",
    "accuracy",
    "agreement",
    "analyse",
    "binned_psi",
    "delta",
    "paired",
    "parse_metrics",
    "psi",
    "shadow_agreement",
]

Status = Literal["pass", "fail", "inconclusive"]
K = TypeVar("K", str, float)
_EPS = 1e-6  # share given to an empty PSI bin, so that log(0) never happens
_NAN = float("nan")
_COUNTERS = (
    "prediction_requests",
    "inference_errors",
    "predictions",
    "prediction_latency_seconds",
    "prediction_model_cpu_seconds",
    "prediction_scores",
    "shadow_decisions",
    "client_disconnects",
)
SCORE_BINS = 10
_CREATED = frozenset(f"{name}_created" for name in _COUNTERS)


@dataclass(frozen=True)
class VariantStats:
    """Counters of one variant: cumulative as scraped, or of an interval after `delta`.

    `requests` is keyed by status class ("2xx", "4xx", "5xx"), `errors` by reason; `buckets`
    are the latency histogram's (upper bound in seconds, cumulative count), sorted, ending at
    +Inf. `started` is the earliest `_created` time of the variant's series (None when the
    server does not export them); `reset` marks an interval in which the server restarted."""

    requests: Mapping[str, float] = field(default_factory=dict)
    errors: Mapping[str, float] = field(default_factory=dict)
    predictions: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()
    started: float | None = None
    reset: bool = False
    scores: tuple[float, ...] = ()  # count of predicted probabilities per tenth of [0, 1]
    agreed: float = 0.0  # shadow rows whose decision equals stable's...
    compared: float = 0.0  # ...out of this many
    disconnects: float = 0.0  # clients gone before their request was read: not requests
    model_cpu: tuple[tuple[float, float], ...] = ()  # CPU seconds per model call, as `buckets`

    @property
    def total_requests(self) -> float:
        return float(sum(self.requests.values()))

    @property
    def error_rate(self) -> float:
        """5xx / requests; NaN without requests."""
        return _ratio(self.requests.get("5xx", 0.0), self.total_requests)

    @property
    def invalid_rate(self) -> float:
        """4xx / requests; NaN without requests."""
        return _ratio(self.requests.get("4xx", 0.0), self.total_requests)

    @property
    def observations(self) -> float:
        """Requests counted by the latency histogram (answered predictions)."""
        return self.buckets[-1][1] if self.buckets else 0.0

    @property
    def model_calls(self) -> float:
        """Model calls counted by the model CPU histogram (one per micro-batch)."""
        return self.model_cpu[-1][1] if self.model_cpu else 0.0

    def latency_quantile(self, q: float = 0.99) -> float:
        """Seconds from arrival to answer (see `_quantile`)."""
        return _quantile(self.buckets, q)

    def model_cpu_quantile(self, q: float = 0.5) -> float:
        """CPU seconds of one model call on its thread (see `_quantile`)."""
        return _quantile(self.model_cpu, q)


def _quantile(buckets: tuple[tuple[float, float], ...], q: float) -> float:
    """By linear interpolation within the bucket, as PromQL's histogram_quantile; the largest
    finite bound when the rank falls in +Inf, NaN without observations."""
    if len(buckets) < 2 or buckets[-1][1] <= 0:
        return _NAN
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets[:-1]:
        if count >= rank:
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return buckets[-2][0]


def parse_metrics(
    text: str, model: str | None = None, versions: Mapping[str, str] | None = None
) -> dict[str, VariantStats]:
    """Per-variant counters from Prometheus text, summed over versions (and over models,
    unless `model` selects one). Series without a `variant` label are ignored, and so are
    those of a variant named in `versions` with another version (what it served before: a
    server keeps an old version's series after a swap)."""
    from prometheus_client.parser import text_string_to_metric_families

    # per variant: counts, errors, latency buckets, created times, model CPU buckets
    acc: dict[str, tuple[dict[str, float], dict[str, float], dict[float, float], list[float]]]
    acc, cpu_of = {}, dict[str, dict[float, float]]()
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise SourceError(
            f"metrics text cannot be parsed ({exc}); expected the Prometheus text of /metrics"
        ) from exc
    for s in (sample for family in families for sample in family.samples):
        labels, name = s.labels, s.name
        if "variant" not in labels or (model is not None and labels.get("model") != model):
            continue
        expected = (versions or {}).get(labels["variant"])
        if expected is not None and labels.get("version") != expected:
            continue
        counts, errors, buckets, created = acc.setdefault(labels["variant"], ({}, {}, {}, []))
        cpu = cpu_of.setdefault(labels["variant"], {})
        if name in _CREATED:
            created.append(s.value)
        elif name == "prediction_requests_total":
            _add(counts, labels.get("code", "?")[:1] + "xx", s.value)
        elif name == "predictions_total":
            _add(counts, "predictions", s.value)
        elif name == "inference_errors_total":
            _add(errors, labels.get("reason", "unknown"), s.value)
        elif name == "prediction_latency_seconds_bucket":
            _add(buckets, float(labels["le"]), s.value)
        elif name == "prediction_model_cpu_seconds_bucket":
            _add(cpu, float(labels["le"]), s.value)
        elif name == "prediction_scores_total":
            _add(counts, f"bin{labels.get('bin', '?')}", s.value)
        elif name == "client_disconnects_total":
            _add(counts, "disconnects", s.value)
        elif name == "shadow_decisions_total":
            _add(counts, "agreed" if labels.get("agrees") == "true" else "disagreed", s.value)
    return {
        variant: VariantStats(
            {k: v for k, v in counts.items() if k.endswith("xx")},
            errors,
            counts.get("predictions", 0.0),
            tuple(sorted(buckets.items())),
            min(created, default=None),
            scores=tuple(counts.get(f"bin{i}", 0.0) for i in range(SCORE_BINS)),
            agreed=counts.get("agreed", 0.0),
            compared=counts.get("agreed", 0.0) + counts.get("disagreed", 0.0),
            disconnects=counts.get("disconnects", 0.0),
            model_cpu=tuple(sorted(cpu_of[variant].items())),
        )
        for variant, (counts, errors, buckets, created) in sorted(acc.items())
    }


def delta(after: VariantStats, before: VariantStats) -> VariantStats:
    """The stats of the interval between two scrapes. A counter that went down or vanished, or
    a changed `started`, means the server restarted: the result is empty with `reset=True`."""
    requests = _sub(after.requests, before.requests)
    errors = _sub(after.errors, before.errors)
    buckets = _sub(dict(after.buckets), dict(before.buckets))
    cpu = _sub(dict(after.model_cpu), dict(before.model_cpu))
    predictions = after.predictions - before.predictions
    restarted = None not in (after.started, before.started) and after.started != before.started
    scores = _sub(dict(enumerate(after.scores)), dict(enumerate(before.scores)))
    agreed, compared = after.agreed - before.agreed, after.compared - before.compared
    gone = after.disconnects - before.disconnects
    bad = min(predictions, agreed, compared, gone) < 0 or restarted or after.reset or before.reset
    if requests is None or errors is None or buckets is None or cpu is None or scores is None:
        return VariantStats(reset=True)
    if bad:
        return VariantStats(reset=True)
    return VariantStats(
        requests,
        errors,
        predictions,
        tuple(sorted(buckets.items())),
        scores=tuple(scores[i] for i in sorted(scores)),
        agreed=agreed,
        compared=compared,
        disconnects=gone,
        model_cpu=tuple(sorted(cpu.items())),
    )


def binned_psi(reference: VariantStats, candidate: VariantStats, min_scores: int = 1) -> float:
    """PSI between two variants' score histograms (tenths of [0, 1]); NaN when either side
    has fewer than `min_scores` scores."""
    ref, cand = _floats(reference.scores), _floats(candidate.scores)
    if ref.size != cand.size or ref.sum() < max(min_scores, 1) or cand.sum() < max(min_scores, 1):
        return _NAN
    # half a count in every bin (Jeffreys): an empty bin of a small window would otherwise
    # count as a share of ~0 and dominate the sum (PSI 0.68 between two equal models, seen)
    r, c = ((x + 0.5) / (x.sum() + 0.5 * x.size) for x in (ref, cand))
    return float(np.sum((c - r) * np.log(c / r)))


def shadow_agreement(shadow: VariantStats, min_scores: int = 1) -> float:
    """Share of shadow decisions equal to stable's; NaN below `min_scores` compared rows."""
    return shadow.agreed / shadow.compared if shadow.compared >= max(min_scores, 1) else _NAN


def psi(reference: npt.ArrayLike, candidate: npt.ArrayLike, bins: int = 10) -> float:
    """Population stability index over `bins` quantile bins of `reference` (fewer when its
    quantiles tie); NaN when either side is empty or holds a non-finite value."""
    if bins < 1:
        raise UsageError(f"psi needs at least 1 bin, got bins={bins}")
    ref, cand = _floats(reference), _floats(candidate)
    if not (ref.size and cand.size and np.isfinite(ref).all() and np.isfinite(cand).all()):
        return _NAN
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    shares = [
        np.maximum(
            np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1) / x.size,
            _EPS,
        )
        for x in (ref, cand)
    ]
    r, c = shares
    return float(np.sum((c - r) * np.log(c / r)))


def agreement(stable: npt.ArrayLike, candidate: npt.ArrayLike, threshold: float = 0.5) -> float:
    """Share of paired scores on the same side of `threshold` (>= is positive); NaN if none."""
    s, c = _pair(stable, candidate, "agreement")
    return float(np.mean((s >= threshold) == (c >= threshold))) if s.size else _NAN


def accuracy(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float = 0.5) -> float:
    """Share of scores whose side of `threshold` matches the 0/1 (or bool) label; NaN if none."""
    s, y = _pair(scores, labels, "accuracy")
    return float(np.mean((s >= threshold) == (y > 0.5))) if s.size else _NAN


def paired(log: pd.DataFrame, stable: str, candidate: str) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of two variants for the same (request_id, row), from a `read_log` frame."""
    key = ["request_id", "row"]
    sides = [
        log.loc[log["variant"] == v, [*key, "output"]].drop_duplicates(key, keep="last")
        for v in (stable, candidate)
    ]
    both = sides[0].merge(sides[1], on=key, suffixes=("_s", "_c"))
    return both["output_s"].to_numpy(np.float64), both["output_c"].to_numpy(np.float64)


@dataclass(frozen=True)
class Thresholds:
    """Limits of one rollout step; a limit set to None is not checked. Rates are in 0..1."""

    max_error_rate: float | None = None
    max_invalid_rate: float | None = None
    max_p99_ms: float | None = None
    max_psi: float | None = None
    min_agreement: float | None = None
    min_accuracy: float | None = None
    min_requests: int = 100
    # candidate's median CPU time per model call minus stable's: what the model costs,
    # measured alike for both variants whatever their traffic shares (end-to-end latency in
    # one process is not: the variant with little traffic waits behind the other's work)
    max_model_cpu_increase_ms: float | None = None
    min_scores: int = 100  # scores needed before PSI and agreement are judged

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            rate = f.name in ("max_error_rate", "max_invalid_rate", "min_agreement", "min_accuracy")
            if value is not None and not (0 <= value <= (1 if rate else math.inf)):
                bound = "within 0..1" if rate else "a number >= 0"
                raise UsageError(f"threshold {f.name}={value!r} must be {bound}; fix or drop it")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    value: float | None
    limit: float | None
    detail: str  # one readable line


@dataclass(frozen=True)
class Verdict:
    status: Status
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        """Why the verdict is not a pass, e.g. for `GateFailed`: the failed checks when some
        failed (an inconclusive one is no reason to fail), otherwise the inconclusive ones."""
        failed = [c.detail for c in self.checks if c.status == "fail"]
        return failed or [c.detail for c in self.checks if c.status == "inconclusive"]


MIN_MODEL_CALLS = 20  # model calls on each side before their median CPU times are compared


def analyse(
    candidate: VariantStats,
    stable: VariantStats | None,
    thresholds: Thresholds,
    *,
    psi: float | None,
    agreement: float | None,
    accuracy: float | None,
    share: float = 100.0,
    window_s: float | None = None,
) -> Verdict:
    """Judge an interval's stats (see `delta`) and score metrics against `thresholds`.

    Request-based checks are inconclusive below `min_requests`; a "requests" check is always
    present, so a verdict never passes on too little traffic. Score metrics are taken as given:
    the caller decides how many logged rows they need. A check without enough data says how
    much traffic a window needs, from the candidate's `share` (%) and `window_s`."""
    t, n, p99 = thresholds, candidate.total_requests, candidate.latency_quantile(0.99) * 1000
    need = partial(_needed, share=share, window_s=window_s)
    cpu = candidate.model_cpu_quantile(0.5) * 1000
    stable_cpu = stable.model_cpu_quantile(0.5) * 1000 if stable is not None else _NAN
    calls = min(candidate.model_calls, stable.model_calls if stable else 0.0)
    cpu_note = "" if math.isnan(cpu - stable_cpu) else f" ({cpu:.2f} ms against {stable_cpu:.2f})"
    scored = sum(candidate.scores)
    notes = ["", "", ""]
    if stable is not None:
        ref = stable.latency_quantile(0.99) * 1000
        diff = "" if math.isnan(ref - p99) else f", {p99 - ref:+.1f} ms"
        notes = [_note(stable.error_rate), _note(stable.invalid_rate), _note(ref, " ms", diff)]
    if candidate.reset:
        detail = "the server restarted during the interval (a counter went down); measure again"
    else:
        detail = f"{n:.0f} requests {'>=' if n >= t.min_requests else '<'} min {t.min_requests}"
        detail += "" if n >= t.min_requests else need(t.min_requests, "requests")
    enough: Status = "pass" if n >= t.min_requests and not candidate.reset else "inconclusive"
    counted = partial(_judge, min_n=t.min_requests, reset=candidate.reset)
    errors = candidate.errors
    checks = [
        Check("requests", enough, n, t.min_requests, detail),
        counted("error_rate", candidate.error_rate, t.max_error_rate, n, notes[0] + _top(errors)),
        counted("invalid_rate", candidate.invalid_rate, t.max_invalid_rate, n, notes[1]),
        counted("latency_p99", p99, t.max_p99_ms, candidate.observations, notes[2], " ms"),
        _judge(
            "model_cpu_increase",
            cpu - stable_cpu,
            t.max_model_cpu_increase_ms,
            calls,
            cpu_note,
            " ms",
            min_n=MIN_MODEL_CALLS,
            reset=candidate.reset,
            unit_n="model calls",
        ),
        _judge(
            "psi",
            psi,
            t.max_psi,
            missing=f"{scored:.0f} candidate scores in the window, {t.min_scores} needed "
            f"(deploy.analysis.min_scores){need(t.min_scores, 'scored rows')}",
        ),
        _judge(
            "agreement",
            agreement,
            t.min_agreement,
            upper=False,
            missing=f"{candidate.compared:.0f} shadow rows compared, {t.min_scores} needed "
            f"(deploy.analysis.min_scores){need(t.min_scores, 'mirrored rows')}",
        ),
        _judge(
            "accuracy",
            accuracy,
            t.min_accuracy,
            upper=False,
            missing=f"fewer than {t.min_scores} labelled requests in the step "
            f"(deploy.analysis.min_scores); labels come from POST /feedback, or on a laptop "
            f"from deploy.analysis.replay",
        ),
    ]
    done = tuple(c for c in checks if c is not None)
    statuses = {c.status for c in done}
    verdict: Status = next(s for s in ("fail", "inconclusive", "pass") if s in statuses)
    return Verdict(verdict, done)


_LABELS = {
    "error_rate": "error rate",
    "invalid_rate": "invalid-input rate",
    "latency_p99": "p99 latency",
    "model_cpu_increase": "median model CPU per call above stable's",
    "psi": "score PSI",
    "agreement": "agreement with stable",
}


def _judge(
    name: str,
    value: float | None,
    limit: float | None,
    sample: float | None = None,
    note: str = "",
    unit: str = "",
    *,
    upper: bool = True,
    min_n: int = 0,
    reset: bool = False,
    unit_n: str = "requests",
    missing: str = "no data",
) -> Check | None:
    """One check; `sample` is the request count that a request-based value rests on, and
    `missing` says why a value is unknown (and what it needs)."""
    if limit is None:
        return None
    label, fmt = _LABELS.get(name, name), ".1f" if unit else ".3f"
    over = "" if sample is None else f" over {sample:.0f} {unit_n}"
    status: Status = "inconclusive"
    if reset and sample is not None:
        detail = f"{label}: the server restarted during the interval (a counter went down)"
    elif value is None or math.isnan(value):
        detail = f"{label} inconclusive, unknown ({missing}){over}"
    elif sample is not None and sample < min_n:
        detail = f"{label} {value:{fmt}}{unit} over only {sample:.0f} {unit_n} (< min {min_n})"
    else:
        bad = value > limit if upper else value < limit
        status = "fail" if bad else "pass"
        op = (">" if bad else "<=") if upper else ("<" if bad else ">=")
        side = "max" if upper else "min"
        detail = f"{label} {value:{fmt}}{unit} {op} {side} {limit:{fmt}}{unit}{over}"
    return Check(name, status, value, limit, detail + note)


def _needed(count: int, what: str, *, share: float, window_s: float | None) -> str:
    """How much traffic a window needs for `count` of the candidate's `what`."""
    total = count * 100.0 / share if share > 0 else math.inf
    text = f"; a window needs {count} {what} of the candidate"
    if share < 100:
        text += f": about {total:.0f} requests in all at {share:g}% of traffic"
    if window_s:
        text += f" ({total / window_s:.1f}/s over {window_s:g} s)"
    return text


def _note(stable_value: float, unit: str = "", diff: str = "") -> str:
    if math.isnan(stable_value):
        return " (stable n/a)"
    return f" (stable {stable_value:{'.1f' if unit else '.3f'}}{unit}{diff})"


def _top(errors: Mapping[str, float]) -> str:
    top = sorted(((v, k) for k, v in errors.items() if v > 0), reverse=True)[:3]
    return f"; errors: {', '.join(f'{k} {v:.0f}' for v, k in top)}" if top else ""


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else _NAN


def _add(into: dict[K, float], key: K, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def _sub(after: Mapping[K, float], before: Mapping[K, float]) -> dict[K, float] | None:
    out = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after.keys() | before.keys()}
    return None if any(v < 0 for v in out.values()) else out


def _floats(values: npt.ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _pair(a: npt.ArrayLike, b: npt.ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _floats(a), _floats(b)
    if x.shape != y.shape:
        raise UsageError(f"{what} needs paired values, got {x.size} and {y.size}; see `paired`")
    return x, y
