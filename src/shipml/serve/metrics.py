"""The server's Prometheus metrics, with the names and labels of the design notes.

Every metric carries `model`, `version` and `variant`. With several worker processes
prometheus-client's multiprocess mode is used (`PROMETHEUS_MULTIPROC_DIR`, set by the
launcher), so `/metrics` on any worker reports the sum over all of them: N requests sent,
N counted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

# Fine between 5 and 100 ms, where a model's latency lives: quantiles are interpolated within
# a bucket, so wide buckets there would blur a rollout's latency comparison.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1,
    0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# A model call's own CPU time: from a tenth of a millisecond (a small pipeline on a few rows)
# to seconds, fine where small models live.
MODEL_BUCKETS = (
    0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005,
    0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip
LABELS = ("model", "version", "variant")
_BINS = tuple(str(i) for i in range(10))


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.latency = Histogram(
            "prediction_latency_seconds",
            "Time from a request's arrival to its answer, for answered predictions.",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.model_cpu = Histogram(
            "prediction_model_cpu_seconds",
            "CPU time of each model call on its model thread (time.thread_time): what the "
            "model costs, whatever else the process runs; rollouts compare it between variants.",
            LABELS,
            buckets=MODEL_BUCKETS,
            registry=reg,
        )
        self.predictions = Counter("predictions", "Rows predicted.", LABELS, registry=reg)
        self.requests = Counter(
            "prediction_requests",
            "Prediction requests answered, by HTTP status.",
            (*LABELS, "code"),
            registry=reg,
        )
        self.errors = Counter(
            "inference_errors",
            "Requests that got no prediction, by reason.",
            (*LABELS, "reason"),
            registry=reg,
        )
        self.disconnects = Counter(
            "client_disconnects",
            "Prediction requests whose client went away before the body was read: not "
            "answered, and counted neither as requests nor as errors (no fault of the model "
            "or of the input).",
            LABELS,
            registry=reg,
        )
        self.scores = Counter(
            "prediction_scores",
            "Predicted probabilities by tenth of [0, 1] (bin 0 is [0, 0.1)): the score "
            "distribution that rollout analysis compares between variants.",
            (*LABELS, "bin"),
            registry=reg,
        )
        self.shadow_decisions = Counter(
            "shadow_decisions",
            "Shadow rows whose decision agrees with that of the variant that answered, or not.",
            (*LABELS, "agrees"),
            registry=reg,
        )
        gauge_mode: dict[str, Any] = {"multiprocess_mode": "livemax"} if self.multiprocess else {}
        self.info = Gauge(
            "model_info",
            "1 for each model version a variant serves.",
            (*LABELS, "weight"),
            registry=reg,
            **gauge_mode,
        )
        self._series: dict[tuple[str, str, str], _Series] = {}

    def answered(self, labels: tuple[str, str, str], seconds: float, proba: np.ndarray) -> None:
        """Count one answered prediction request: latency, rows, status 200 and score bins."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(self, labels)
        series.latency.observe(seconds)
        series.predictions.inc(len(proba))
        series.ok.inc()
        series.observe_scores(proba)

    def model_call(self, labels: tuple[str, str, str]) -> Callable[[float], None]:
        """What a variant's batcher calls with the CPU seconds of each of its model calls."""
        return self.model_cpu.labels(*labels).observe

    def observe_scores(self, labels: tuple[str, str, str], proba: np.ndarray) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(self, labels)
        series.observe_scores(proba)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Series:
    """The children of one (model, version, variant), looked up once instead of per request
    (`labels()` costs microseconds: a lock, a dict lookup, label validation)."""

    __slots__ = ("_labels", "_metrics", "_scores", "latency", "ok", "predictions")

    def __init__(self, metrics: Metrics, labels: tuple[str, str, str]) -> None:
        self._metrics, self._labels = metrics, labels
        self.latency = metrics.latency.labels(*labels)
        self.predictions = metrics.predictions.labels(*labels)
        self.ok = metrics.requests.labels(*labels, "200")
        self._scores: list[Any] = [None] * len(_BINS)  # created when first counted

    def observe_scores(self, proba: np.ndarray) -> None:
        """Count each probability in its tenth of [0, 1] (1.0 in the last)."""
        if len(proba) > 32:  # ufuncs, not np.clip: its Python wrapper costs 20 us
            index = (proba * 10).astype(np.intp)
            np.minimum(index, 9, out=index)
            np.maximum(index, 0, out=index)
            counts = np.bincount(index, minlength=len(_BINS)).tolist()
            bins = [(i, n) for i, n in enumerate(counts) if n]
        else:  # numpy's calls cost more than a loop over a few values; same bins
            tally = [0] * len(_BINS)
            for p in proba.tolist():
                tally[min(max(int(p * 10), 0), 9)] += 1
            bins = [(i, n) for i, n in enumerate(tally) if n]
        for i, n in bins:
            child = self._scores[i]
            if child is None:
                child = self._scores[i] = self._metrics.scores.labels(*self._labels, _BINS[i])
            child.inc(n)
