"""The local target knows the server it started: another process on its port is never taken
for it, fails the release with the holder named, and `status` tells it from a server that is
down. The other process is a real HTTP server on loopback that answers 200 on every GET."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from shipml._ports import claim
from shipml._process import pid_alive
from shipml.config import load_project
from shipml.deploy.local import LocalTarget
from shipml.errors import PortError, ShipmlError
from tests._services.foreign import foreign_server, free_port
from tests.integration.deploy.conftest import Rollout
from tests.integration.deploy.test_target_conformance import models

pytestmark = pytest.mark.slow


def _copy(registered: Path, tmp_path: Path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(registered, root, ignore=shutil.ignore_patterns("deploy", "serve"))
    return root


def test_a_held_port_fails_the_first_release_before_anything_is_recorded(
    registered: Path, tmp_path: Path
) -> None:
    with foreign_server() as port:
        r = Rollout(load_project(_copy(registered, tmp_path), env={}))
        controller = r.controller(SHIPML_SERVE__PORT=str(port))
        with pytest.raises(PortError) as failed:
            controller.deploy(1)
        message = str(failed.value)
        assert f"port {port} on 127.0.0.1 is in use by pid {os.getpid()}" in message
        assert "serve.port" in message
        assert failed.value.exit_code == 2
        assert controller.releases.history("rollout") == []  # nothing recorded as promoted
        assert r.champion() is None
        status = controller.target.status()
        assert (status.up, status.facts["answering"]) == (False, "another process")


def test_a_process_that_takes_the_port_after_the_check_is_not_taken_for_our_server(
    registered: Path, tmp_path: Path
) -> None:
    """The check passes; then, while our server starts, another process takes the port and
    answers 200 on /readyz. Readiness must not accept it (it did: the release was promoted)."""
    port = free_port()
    root = _copy(registered, tmp_path)
    target = LocalTarget(load_project(root, env={"SHIPML_SERVE__PORT": str(port)}))
    stable, _ = models(target.project)
    taken, done = threading.Event(), threading.Event()

    def take_the_port() -> None:  # as soon as the supervisor is spawned (after the check)
        deadline = time.monotonic() + 120
        while not (target.dir / "server.json").exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        try:
            with foreign_server(port):
                taken.set()
                done.wait(180)
        except OSError:  # our server claimed the port first: this run proves nothing
            pass

    thief = threading.Thread(target=take_the_port)
    thief.start()
    try:
        with pytest.raises(ShipmlError) as failed:
            target.start(stable)
        assert taken.is_set(), "the server claimed its port before the other process could"
        assert isinstance(failed.value, PortError), failed.value
        assert f"in use by pid {os.getpid()}" in str(failed.value)
        assert not (target.dir / "server.json").exists()
        status = target.status()
        assert (status.up, status.ready) == (False, False)
        assert status.facts["answering"] == "another process"
        assert "it is not the server shipml started" in status.detail
    finally:
        done.set()
        thief.join(timeout=30)
        target.stop()


def test_status_tells_another_process_on_the_port_from_our_server_being_down(
    registered: Path, tmp_path: Path
) -> None:
    target = LocalTarget(load_project(_copy(registered, tmp_path), env={}))
    stable, _ = models(target.project)
    try:
        target.start(stable)
        record = json.loads((target.dir / "server.json").read_text())
        assert target.status().facts["answering"] == "ours"
        os.killpg(record["pid"], signal.SIGKILL)  # the supervisor and its server, at once
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if not pid_alive(record["pid"]):
                    claim("127.0.0.1", record["port"], fix="").close()  # the server is gone
                    break
            except PortError:
                pass
            time.sleep(0.05)

        down = target.status()
        assert (down.up, down.ready, down.facts["answering"]) == (False, False, "nothing")
        assert down.detail.startswith("our server is down")
        assert "another process" not in down.detail

        with foreign_server(record["port"]):
            taken = target.status()
        assert (taken.up, taken.ready, taken.facts["answering"]) == (
            False,
            False,
            "another process",
        )
        assert taken.detail.startswith("our server is down")
        assert f"another process answers on {record['url']}, held by pid {os.getpid()}" in (
            taken.detail
        )
    finally:
        target.stop()
