"""Two deploys at once, and a controller killed mid-rollout, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from shipml.state.releases import Releases
from tests.integration.deploy.conftest import VERSIONS, Rollout, Traffic

pytestmark = pytest.mark.slow


def cli(rollout: Rollout, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipml", *args, "--project", str(rollout.project.root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def start_deploy(rollout: Rollout) -> subprocess.Popen[str]:
    """`shipml deploy` with windows of 60 s: it holds its first step for the whole test."""
    env = {**os.environ, "SHIPML_DEPLOY__ANALYSIS__INTERVAL_S": "60"}
    command = [sys.executable, "-m", "shipml", "deploy", "--version", str(VERSIONS["good"])]
    process = subprocess.Popen(
        [*command, "--project", str(rollout.project.root)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    releases = Releases(rollout.controller().store)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        current = releases.in_progress("rollout")
        if current is not None and rollout.controller().target.status().variant("shadow"):
            return process
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the deploy never reached its shadow step: {process.communicate()}")


@pytest.mark.parametrize("recovery", ["rollback", "resume"])
def test_a_second_deploy_is_refused_and_a_killed_controller_is_recovered(
    rollout: Rollout, recovery: str
) -> None:
    with Traffic(rollout.url) as traffic:
        traffic.wait_for(50)
        first = start_deploy(rollout)
        try:
            second = cli(rollout, "deploy", "--version", str(VERSIONS["good"]))
            assert second.returncode == 2, second
            assert "deploy:rollout is held by" in second.stderr
            assert f"pid {first.pid}" in second.stderr
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        status = json.loads(cli(rollout, "status", "--json").stdout)
        assert status["lock"]["stale"] is True
        assert status["in_progress"]["current_step"] == "shadow (mirrored traffic)"
        if recovery == "rollback":
            done = cli(rollout, "rollback", "--json")
        else:
            done = cli(rollout, "deploy", "--resume", "--json", SHIPML_DEPLOY__STRATEGY="canary")
        traffic.wait_for(traffic.codes[200] + 50)
    assert done.returncode == 0, (
        done.stdout,
        done.stderr,
        json.loads(cli(rollout, "status", "--json").stdout),
    )
    release = json.loads(done.stdout)
    status = json.loads(cli(rollout, "status", "--json").stdout)
    assert status["lock"] is None
    assert status["in_progress"] == {}
    variants = [(v["name"], v["version"], v["weight"]) for v in status["target"]["variants"]]
    if recovery == "rollback":
        assert release["status"] == "aborted"
        assert (variants, rollout.champion()) == ([("stable", 1, 100.0)], 1)
    else:
        assert release["status"] == "promoted"
        assert (variants, rollout.champion()) == ([("stable", 2, 100.0)], 2)
    assert status["aliases"]["champion"] == rollout.champion()  # one champion, as served
    assert traffic.failed() == {}, traffic.codes
