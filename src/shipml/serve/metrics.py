"""The server's Prometheus metrics, with the names and labels of the design notes.

Every metric carries `model`, `version` and `variant`. With several worker processes
prometheus-client's multiprocess mode is used (`PROMETHEUS_MULTIPROC_DIR`, set by the
launcher), so `/metrics` on any worker reports the sum over all of them: N requests sent,
N counted.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

# Fine between 5 and 100 ms, where a model's latency lives: quantiles are interpolated within
# a bucket, so wide buckets there would blur a rollout's latency comparison.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1,
    0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
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

    def observe_scores(self, labels: tuple[str, str, str], proba: np.ndarray) -> None:
        counts = np.bincount(np.clip((proba * 10).astype(np.int64), 0, 9), minlength=10)
        for i in np.flatnonzero(counts):
            self.scores.labels(*labels, _BINS[i]).inc(int(counts[i]))

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
