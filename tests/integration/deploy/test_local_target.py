"""The local target's own duties: supervision, and failing fast with the server's log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from shipml.config import load_project
from shipml.deploy.local import LocalTarget
from shipml.deploy.target import ModelRef
from shipml.errors import DeployError
from tests.integration.deploy.test_target_conformance import models

pytestmark = pytest.mark.slow


def server_pid(supervisor: int) -> int:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_a_killed_server_is_restarted_with_the_stable_model_promoted_last(
    registered: Path, tmp_path: Path
) -> None:
    root = tmp_path / "p"
    shutil.copytree(registered, root, ignore=shutil.ignore_patterns("deploy", "serve"))
    target = LocalTarget(load_project(root, env={}))
    a, b = models(target.project)
    try:
        target.start(a)
        target.start(b)  # swapped in place through the admin API, as a promotion does
        supervisor = int(json.loads((target.dir / "server.json").read_text())["pid"])
        time.sleep(5.5)  # past the start-up window: a crash now is a crash, not a bad start
        first = server_pid(supervisor)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = target.status()
            if status.ready and server_pid(supervisor) != first:
                break
            time.sleep(0.2)
        assert status.ready, target.log_tail()
        assert [(v.name, v.version) for v in status.variants] == [("stable", 2)]
        assert "restarting it (1)" in target.log_tail()
    finally:
        target.stop()
    assert not _alive(supervisor)


def test_a_server_that_cannot_start_fails_fast_with_its_log(
    registered: Path, tmp_path: Path
) -> None:
    root = tmp_path / "p"
    shutil.copytree(registered, root, ignore=shutil.ignore_patterns("deploy", "serve"))
    target = LocalTarget(load_project(root, env={}))
    started = time.monotonic()
    with pytest.raises(DeployError, match=r"exited with code .* before it was ready") as failed:
        target.start(ModelRef("rollout", 9, tmp_path / "unused"))  # no such version
    assert time.monotonic() - started < 60
    assert "has no version 9" in str(failed.value)  # the reason, from its log
    assert "Traceback" not in str(failed.value)  # an expected error, said in one line
    assert target.status().up is False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
