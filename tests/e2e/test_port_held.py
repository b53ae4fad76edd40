"""`shipml run` on a port another process holds: exit 2 before any stage runs, the holder and
`serve.port` named, nothing recorded as released; `shipml status` says who answers there.
The other process is a real HTTP server on 127.0.0.1 that answers 200 on /readyz."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests._services.foreign import foreign_server
from tests.e2e.conftest import copy_project, shipml

pytestmark = pytest.mark.slow


def test_a_run_that_would_serve_on_a_held_port_fails_before_ingest(tmp_path: Path) -> None:
    project = copy_project("cancer", tmp_path)
    assert shipml(project, "ingest").code == 0  # a complete project: only the port is wrong
    assert shipml(project, "expectations", "suggest").code == 0
    with foreign_server() as port:
        env = {"SHIPML_SERVE__PORT": str(port), "SHIPML_DEPLOY__IN_RUN": "first"}
        out = shipml(project, "run", env=env)
        trained = (project / ".shipml" / "mlflow.db").exists()
        status = shipml(project, "status", "--json", env=env)

    assert out.code == 2, out.stdout + out.stderr
    assert f"port {port} on 127.0.0.1 is in use by pid {os.getpid()}" in out.stderr
    assert "serve.port" in out.stderr
    assert "ingest" not in out.stdout + out.stderr  # no stage started
    assert not trained

    assert status.code == 0, status.stderr
    target = status.json["target"]
    assert (target["up"], target["ready"], target["answering"]) == (False, False, "another process")
    assert f"held by pid {os.getpid()}" in target["detail"]
    assert status.json["releases"] == [] and status.json["serving_release"] == {}
