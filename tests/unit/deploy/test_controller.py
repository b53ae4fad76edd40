"""The controller's state machine, against an in-memory target (a test double: the real
targets are exercised in tests/integration/deploy). The registry calls are replaced too, so
these run in milliseconds; the windows' metrics come from a real prometheus-client registry
that each test fills as the server would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipml.config import DeployConfig, load_project
from shipml.deploy.controller import Controller, plan
from shipml.deploy.target import ModelRef, TargetStatus, VariantState
from shipml.errors import GateFailed, UsageError
from shipml.serve.metrics import Metrics
from shipml.state.store import StateStore


class MemoryTarget:
    kind = "memory"

    def __init__(self) -> None:
        self.variants: dict[str, VariantState] = {}
        self.metrics_registry = Metrics()
        self.on_sleep: Any = lambda: None
        self.calls: list[str] = []

    def start(self, stable: ModelRef) -> None:
        self.calls.append(f"start {stable.version}")
        self.variants = {"stable": VariantState("stable", stable.version, 100.0, False)}

    def load(self, variant: str, model: ModelRef, *, shadow: bool) -> None:
        old = self.variants.get(variant)
        weight = old.weight if old and not shadow else (100.0 if variant == "stable" else 0.0)
        self.variants[variant] = VariantState(variant, model.version, weight, shadow)

    def set_weights(self, weights: dict[str, float]) -> None:
        self.variants = {
            k: v if v.shadow else VariantState(k, v.version, weights.get(k, 0.0), False)
            for k, v in self.variants.items()
        }

    def remove(self, variant: str) -> None:
        self.variants.pop(variant, None)

    def metrics(self) -> str:
        return self.metrics_registry.render()[0].decode()

    def labelled(self, variant: str, since: float) -> pd.DataFrame:
        return pd.DataFrame({"output": [], "label": []})

    def status(self) -> TargetStatus:
        return TargetStatus(True, True, "memory://", tuple(self.variants.values()))

    def stop(self) -> None:
        self.variants = {}

    def serve(self, variant: str, n: int, latency: float = 0.005, code: int = 200) -> None:
        labels = ("m", str(self.variants[variant].version), variant)
        m = self.metrics_registry
        m.requests.labels(*labels, str(code)).inc(n)
        if code == 200:
            for _ in range(n):
                m.latency.labels(*labels).observe(latency)
                m.model_cpu.labels(*labels).observe(0.002)  # one model call per request
            m.observe_scores(labels, np.linspace(0.05, 0.95, n))
            if self.variants[variant].shadow:
                m.shadow_decisions.labels(*labels, "true").inc(n)


@pytest.fixture
def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Controller:
    c = fresh(tmp_path, monkeypatch)
    c.deploy(1)  # the first release: nothing to compare with
    return c


def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Controller:
    """A controller with nothing served, no release and no champion yet."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    (tmp_path / "shipml.yaml").write_text(
        "project: m\ndeploy:\n  steps: [50, 100]\n  analysis: {interval_s: 1, min_requests: 10,"
        " min_scores: 10, max_inconclusive: 2}\n"
    )
    project = load_project(tmp_path, env={})
    target = MemoryTarget()
    c = Controller(project, StateStore(project.state_url), target)
    champion: dict[str, int] = {}
    monkeypatch.setattr(c, "_model", lambda v: ModelRef("m", v, tmp_path / str(v)))
    monkeypatch.setattr(c, "_alias", lambda alias: 2)
    monkeypatch.setattr(c, "_snapshot", lambda v: None)
    monkeypatch.setattr(c, "_tag", lambda release, outcome: None)
    monkeypatch.setattr(c, "_move_champion", lambda v, reason: champion.update(champion=v))
    monkeypatch.setattr(c, "_champion", lambda: champion.get("champion"))
    c.champion = champion  # type: ignore[attr-defined]
    c.sleep = lambda seconds: target.on_sleep()
    return c


def target(c: Controller) -> MemoryTarget:
    assert isinstance(c.target, MemoryTarget)
    return c.target


def test_plan_follows_the_strategy() -> None:
    assert plan(DeployConfig()) == ["shadow", 5.0, 25.0, 50.0, 100.0]
    assert plan(DeployConfig(shadow_first=False, steps=[10, 100])) == [10.0, 100.0]
    assert plan(DeployConfig(strategy="shadow")) == ["shadow", 100.0]
    assert plan(DeployConfig(strategy="replace")) == [100.0]
    with pytest.raises(ValueError, match="ending at 100"):
        DeployConfig(steps=[5, 50])


def test_first_release_then_a_good_candidate_is_promoted(controller: Controller) -> None:
    t = target(controller)
    assert controller.champion == {"champion": 1}  # type: ignore[attr-defined]

    def traffic() -> None:
        for name, v in t.variants.items():
            if v.shadow or v.weight > 0:
                t.serve(name, 20)

    t.on_sleep = traffic
    release = controller.deploy(2)
    assert release.status == "promoted"
    assert [a["what"] for a in release.analyses] == [
        "shadow (mirrored traffic)",
        "canary at 50%",
        "canary at 100%",
    ]
    assert list(t.variants.values()) == [VariantState("stable", 2, 100.0, False)]
    assert controller.champion == {"champion": 2}  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="already serving"):
        controller.deploy(2)


def test_no_traffic_holds_then_fails_and_stable_keeps_everything(controller: Controller) -> None:
    with pytest.raises(GateFailed, match="no verdict after 2 windows"):
        controller.deploy(2)
    t = target(controller)
    assert list(t.variants.values()) == [VariantState("stable", 1, 100.0, False)]
    release = controller.releases.history("m")[0]
    assert (release.status, len(release.analyses)) == ("rejected", 2)
    assert controller.champion == {"champion": 1}  # type: ignore[attr-defined]


def test_an_interrupted_rollout_puts_stable_back_and_is_recorded(controller: Controller) -> None:
    t = target(controller)

    def interrupt() -> None:
        raise KeyboardInterrupt

    t.on_sleep = interrupt
    with pytest.raises(KeyboardInterrupt):
        controller.deploy(2)
    release = controller.releases.history("m")[0]
    assert (release.status, release.reason) == ("aborted", "interrupted: KeyboardInterrupt")
    assert list(t.variants.values()) == [VariantState("stable", 1, 100.0, False)]
    assert controller.releases.holder(controller.lock_name) is None
    [event] = controller.store.events(action="release.aborted")
    assert event.details["release"] == release.id


def test_rollback_needs_an_earlier_release_and_promote_needs_one_in_progress(
    controller: Controller,
) -> None:
    with pytest.raises(UsageError, match="no earlier release"):
        controller.rollback()
    with pytest.raises(UsageError, match="no release of m is in progress"):
        controller.promote()
    release = controller.promote(2, reason="hotfix")
    assert release is not None and (release.kind, release.version) == ("promote", 2)
    back = controller.rollback()
    assert (back.kind, back.version, back.previous_version) == ("rollback", 1, 2)
    assert target(controller).variants["stable"].version == 1
    assert controller.champion == {"champion": 1}  # type: ignore[attr-defined]


def test_a_champion_set_by_hand_is_not_replaced_without_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = fresh(tmp_path, monkeypatch)
    c.champion["champion"] = 1  # type: ignore[attr-defined]  # `shipml promote m 1`, no deploy
    t = target(c)

    def traffic() -> None:  # the candidate fails every request
        for name, v in t.variants.items():
            if v.shadow or v.weight > 0:
                t.serve(name, 20, code=500 if v.version == 2 else 200)

    t.on_sleep = traffic
    with pytest.raises(GateFailed, match="error rate"):
        c.deploy(2)
    release = c.releases.history("m")[0]
    assert (release.kind, release.status, release.previous_version) == ("deploy", "rejected", 1)
    assert release.analyses, "judged like any other release"
    assert list(t.variants.values()) == [VariantState("stable", 1, 100.0, False)]
    assert c.champion == {"champion": 1}  # type: ignore[attr-defined]


def test_only_with_nothing_served_and_no_champion_does_a_release_skip_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = fresh(tmp_path, monkeypatch)
    first = c.deploy(3)
    assert (first.kind, first.status, first.analyses) == ("initial", "promoted", [])
    (tmp_path / "again").mkdir()
    c = fresh(tmp_path / "again", monkeypatch)
    c.champion["champion"] = 3  # type: ignore[attr-defined]
    assert c.ensure_serving().version == 3  # `shipml run` serves the champion, not @candidate
