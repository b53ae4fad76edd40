"""What the rollout controller needs from wherever models run: the `Target` protocol.

The controller (controller.py) decides; a target only does. It serves named variants of one
model, `stable` always, and during a release `shadow` (a copy of traffic, never answered) or
`canary` (a share of traffic), and reports the servers' own Prometheus metrics. The local
target (local.py) drives one `shipml serve` process through its admin API; the Kubernetes
target will drive a Helm release the same way. Every target passes the conformance test in
tests/unit/deploy/test_target_conformance.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STABLE", "ModelRef", "Target", "TargetStatus", "VariantState"]

STABLE = "stable"


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, verified, and the local folder holding its files."""

    name: str
    version: int
    path: Path

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def uri(self) -> str:
        """The registry reference a server loads it by (never the folder)."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class VariantState:
    name: str
    version: int | None
    weight: float
    shadow: bool


@dataclass(frozen=True)
class TargetStatus:
    up: bool
    ready: bool
    url: str | None
    variants: tuple[VariantState, ...] = ()
    detail: str = ""
    facts: dict[str, object] = field(default_factory=dict)  # pid, log file, ...

    def variant(self, name: str) -> VariantState | None:
        return next((v for v in self.variants if v.name == name), None)


@runtime_checkable
class Target(Protocol):
    """Where a model is served. Every call is idempotent and returns once it has taken effect
    (a loaded variant is warmed up and receiving its traffic)."""

    kind: str

    def start(self, stable: ModelRef) -> None:
        """Serve `stable` as the only variant with all traffic: start the servers when they
        are down, otherwise swap the stable variant in place (no failed request)."""

    def load(self, variant: str, model: ModelRef, *, shadow: bool) -> None:
        """Add or replace a variant; a new non-shadow variant starts with no traffic."""

    def set_weights(self, weights: dict[str, float]) -> None:
        """Traffic shares of serving variants; variants not named get none."""

    def remove(self, variant: str) -> None:
        """Unload a variant (no error when it is not loaded)."""

    def metrics(self) -> str:
        """The Prometheus text of the servers' /metrics (summed over replicas)."""

    def labelled(self, variant: str, since: float) -> pd.DataFrame:
        """Scores of `variant` logged since `since` (epoch seconds) whose true label has
        arrived through /feedback: columns `output` (probability) and `label` (text)."""

    def status(self) -> TargetStatus: ...

    def stop(self) -> None:
        """Stop serving: in-flight requests finish, logs are flushed."""
