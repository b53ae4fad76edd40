"""Rollouts of good and bad candidates on the local target, with live loopback traffic.

Each test starts from version 1 serving as the first release (see conftest.py) and the
analysis of tests/integration/deploy/project/shipml.yaml: windows of 2 s, at least 25
requests, steps shadow -> 20% -> 50% -> 100%.
"""

from __future__ import annotations

import time

import pytest

from shipml.errors import GateFailed
from shipml.registry.models import get_version
from tests.integration.deploy.conftest import VERSIONS, Rollout, Traffic

pytestmark = pytest.mark.slow


def test_a_good_candidate_goes_shadow_then_canary_steps_then_promoted(rollout: Rollout) -> None:
    controller = rollout.controller()
    with Traffic(rollout.url) as traffic:
        traffic.wait_for(50)
        release = controller.deploy(VERSIONS["good"])
        traffic.wait_for(traffic.codes[200] + 50)
    assert release.status == "promoted", release.reason
    assert release.steps == ["shadow", 20.0, 50.0, 100.0]
    passed = [a["what"] for a in release.analyses if a["status"] == "pass"]
    assert passed == [
        "shadow (mirrored traffic)",
        "canary at 20%",
        "canary at 50%",
        "canary at 100%",
    ]
    assert traffic.failed() == {}, traffic.codes  # not one failed request throughout
    assert {v for _, v in traffic.answered_by} >= {"stable", "canary"}
    status = controller.target.status()
    assert [(v.name, v.version, v.weight) for v in status.variants] == [("stable", 2, 100.0)]
    assert rollout.champion() == 2
    [event] = controller.store.events(action="release.promoted", subject="rollout:2")
    assert event.details["release"] == release.id


@pytest.mark.parametrize(
    ("fault", "check"),
    [("fail10", "error_rate"), ("burn", "model_cpu_increase"), ("shift", "psi")],
)
def test_a_bad_canary_is_rolled_back_within_one_window(
    rollout: Rollout, fault: str, check: str
) -> None:
    controller = rollout.controller(SHIPML_DEPLOY__SHADOW_FIRST="false")
    interval = controller.project.config.deploy.analysis.interval_s
    with Traffic(rollout.url) as traffic:
        traffic.wait_for(50)
        started = time.monotonic()
        with pytest.raises(GateFailed) as failure:
            controller.deploy(VERSIONS[fault])
        back = time.monotonic()
        time.sleep(1.0)
        traffic.wait_for(traffic.codes[200] + 100)
    release = controller.releases.history("rollout")[0]
    assert release.status == "rejected"
    # rejected on its first conclusive window (a busy machine may leave the first ones short
    # of scores: inconclusive, never a pass)
    assert [a["status"] for a in release.analyses][-1] == "fail"
    assert {a["status"] for a in release.analyses[:-1]} <= {"inconclusive"}
    windows = len(release.analyses)
    assert back - started < windows * interval + 10  # plus loading and unloading the model
    assert any(check in r or _label(check) in r for r in failure.value.reasons), failure.value
    # stable serves everything again, and the candidate is gone
    after = [v for t, v in traffic.answered_by if t > back + 0.5]
    assert after and set(after) == {"stable"}
    status = controller.target.status()
    assert [(v.name, v.version, v.weight) for v in status.variants] == [("stable", 1, 100.0)]
    assert rollout.champion() == 1
    [event] = controller.store.events(action="release.rejected")
    failing = {c["check"]: c for c in event.details["checks"]}
    assert check in failing
    assert failing[check]["value"] is not None and failing[check]["threshold"] is not None
    tag = get_version(controller.project, VERSIONS[fault]).tags["shipml.release"]
    assert tag.startswith(f"rejected (release {release.id})")
    if fault != "fail10":
        assert traffic.failed() == {}, traffic.codes


def _label(check: str) -> str:
    return {"error_rate": "error rate", "model_cpu_increase": "model CPU", "psi": "PSI"}[check]


def test_a_canary_without_traffic_is_never_promoted(rollout: Rollout) -> None:
    controller = rollout.controller()
    with pytest.raises(GateFailed) as failure:
        controller.deploy(VERSIONS["good"])
    assert "no verdict after 3 windows" in str(failure.value)
    release = controller.releases.history("rollout")[0]
    assert release.status == "rejected"
    assert all(a["status"] == "inconclusive" for a in release.analyses)
    assert rollout.champion() == 1
    status = controller.target.status()
    assert [(v.name, v.version) for v in status.variants] == [("stable", 1)]


def test_rollback_after_a_promotion_restores_version_and_alias_without_failures(
    rollout: Rollout,
) -> None:
    controller = rollout.controller(SHIPML_DEPLOY__STRATEGY="replace")
    with Traffic(rollout.url) as traffic:
        traffic.wait_for(50)
        promoted = controller.deploy(VERSIONS["good"])
        assert (promoted.status, rollout.champion()) == ("promoted", 2)
        traffic.wait_for(traffic.codes[200] + 50)
        rolled = controller.rollback()
        traffic.wait_for(traffic.codes[200] + 50)
    assert (rolled.kind, rolled.status, rolled.version, rolled.previous_version) == (
        "rollback",
        "promoted",
        1,
        2,
    )
    assert rollout.champion() == 1
    status = controller.target.status()
    assert [(v.name, v.version, v.weight) for v in status.variants] == [("stable", 1, 100.0)]
    assert traffic.failed() == {}, traffic.codes
    [event] = controller.store.events(action="release.rolled_back")
    assert event.details["from_release"] == promoted.id


def test_an_equal_cost_candidate_passes_every_default_step_and_a_cpu_bound_one_fails(
    rollout: Rollout,
) -> None:
    """Two versions of a costlier model (a CPU-bound numpy loop, ~12 ms a call) with the
    default steps and latency limit. At 5% the canary's requests wait behind stable's work
    in the same process (measured: median end-to-end latency 20-24 ms above stable's), so
    end-to-end latency would judge traffic shares; the model's own CPU time does not."""
    env = {
        "SHIPML_DEPLOY__STEPS": "[5, 25, 50, 100]",
        "SHIPML_DEPLOY__ANALYSIS__INTERVAL_S": "6",
    }
    defaults = rollout.controller(**env)
    assert defaults.project.config.deploy.steps == [5, 25, 50, 100]
    with Traffic(rollout.url, threads=12) as traffic:
        traffic.wait_for(50)
        # served directly: a release of it would be judged, rightly, costlier than version 1
        first = rollout.controller().promote(VERSIONS["heavy"], reason="the costlier baseline")
        assert first is not None and first.status == "promoted"
        release = defaults.deploy(VERSIONS["heavy2"])
        assert release.status == "promoted", release.reason
        passed = [a["what"] for a in release.analyses if a["status"] == "pass"]
        assert passed == [
            "shadow (mirrored traffic)",
            "canary at 5%",
            "canary at 25%",
            "canary at 50%",
            "canary at 100%",
        ]
        with pytest.raises(GateFailed) as failure:
            defaults.deploy(VERSIONS["burn"])
    assert any("median model CPU per call" in r for r in failure.value.reasons), failure.value
    assert rollout.champion() == VERSIONS["heavy2"]


def test_replay_drives_a_local_release_with_labelled_synthetic_traffic(rollout: Rollout) -> None:
    """No client at all: the held-out rows of version 2's snapshot are the only traffic, and
    their labels (posted to /feedback) let accuracy be judged at every step."""
    yaml = rollout.project.root / "shipml.yaml"
    yaml.write_text(yaml.read_text().replace("log_sample_rate: 0", "log_sample_rate: 1"))
    controller = rollout.controller(
        SHIPML_DEPLOY__ANALYSIS__REPLAY="true",
        SHIPML_DEPLOY__ANALYSIS__REPLAY_RATE="150",
        SHIPML_DEPLOY__ANALYSIS__MIN_ACCURACY="0.6",
        SHIPML_DEPLOY__ANALYSIS__INTERVAL_S="4",
    )
    controller.target.stop()  # the server starts again with the inference log on
    release = controller.deploy(VERSIONS["good"])
    assert release.status == "promoted", release.reason
    passed = [a for a in release.analyses if a["status"] == "pass"]
    assert [a["what"] for a in passed] == [
        "shadow (mirrored traffic)",
        "canary at 20%",
        "canary at 50%",
        "canary at 100%",
    ]
    for analysis in passed:
        assert analysis["synthetic_requests"] > 0
        [accuracy] = [c for c in analysis["checks"] if c["check"] == "accuracy"]
        assert accuracy["status"] == "pass" and accuracy["value"] > 0.6
    status = controller.status()
    assert status["releases"][0]["traffic"].startswith("synthetic: ")
    assert rollout.champion() == VERSIONS["good"]
