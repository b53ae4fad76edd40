"""Variants: several model versions in one server, chosen per request by traffic weight.

A `Routing` is an immutable table (serving variants with weights, shadow variants); the
server holds one and replaces it whole, in a single assignment, when the admin API changes
anything. A request picks its variant from the table it started with, so a swap never fails
or splits a request, and loading a new model happens before the swap, off the request path.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field, replace

from shipml.serve.batcher import Batcher
from shipml.serve.model import ServedModel


@dataclass(frozen=True)
class Variant:
    name: str
    model: ServedModel
    batcher: Batcher
    weight: float = 0.0
    shadow: bool = False

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model": self.model.name,
            "version": self.model.version,
            "path": str(self.model.path),
            "weight": self.weight,
            "shadow": self.shadow,
        }


@dataclass(frozen=True)
class Routing:
    variants: dict[str, Variant] = field(default_factory=dict)
    _serving: tuple[Variant, ...] = ()
    _cumulative: tuple[float, ...] = ()

    @classmethod
    def of(cls, variants: dict[str, Variant]) -> Routing:
        serving = tuple(v for v in variants.values() if not v.shadow and v.weight > 0)
        cumulative = tuple(itertools.accumulate(v.weight for v in serving))
        return cls(dict(variants), serving, cumulative)

    @property
    def shadows(self) -> list[Variant]:
        return [v for v in self.variants.values() if v.shadow]

    def pick(self, rng: random.Random) -> Variant | None:
        if not self._serving:
            return None
        if len(self._serving) == 1:
            return self._serving[0]
        x = rng.random() * self._cumulative[-1]
        return self._serving[bisect.bisect_right(self._cumulative, x)]

    def with_variant(self, variant: Variant) -> Routing:
        return Routing.of({**self.variants, variant.name: variant})

    def without(self, name: str) -> Routing:
        return Routing.of({k: v for k, v in self.variants.items() if k != name})

    def with_weights(self, weights: dict[str, float]) -> Routing:
        """Serving variants get the given weights; those not named get 0 (no traffic)."""
        return Routing.of(
            {
                k: v if v.shadow else replace(v, weight=float(weights.get(k, 0.0)))
                for k, v in self.variants.items()
            }
        )
