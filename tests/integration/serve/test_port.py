"""`shipml serve` claims its port before it loads or announces anything: on a busy port it
exits 2 with the holder named, and never says "serving"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests._services.foreign import foreign_server
from tests.integration.serve.conftest import TOKEN, start_server

pytestmark = pytest.mark.slow


def _serve(model: Path, project: Path, port: int) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "shipml", "serve", str(model), "--project", str(project)]
    return subprocess.run(
        [*cmd, "--port", str(port)],
        env={**os.environ, "SHIPML_ADMIN_TOKEN": TOKEN},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_serve_on_a_busy_port_exits_2_naming_the_holder_and_never_says_serving(
    model_dir: Path, credit_project: Path
) -> None:
    with foreign_server() as port:
        done = _serve(model_dir, credit_project, port)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "serving" not in out
    assert f"port {port} on 127.0.0.1 is in use by pid {os.getpid()}" in out
    assert "--port" in out and "serve.port" in out
    assert "Traceback" not in out


def test_serve_announces_the_port_it_listens_on_and_proves_its_token(
    model_dir: Path, credit_project: Path
) -> None:
    from shipml.serve.admin import proof

    server = start_server(model_dir, credit_project)
    try:
        answer = httpx.get(
            f"{server.url}/admin/identity", headers={"x-shipml-challenge": "abc"}, timeout=10
        )
        assert answer.json() == {"proof": proof(TOKEN, "abc")}
        assert answer.json() != {"proof": proof("another token", "abc")}
    finally:
        server.stop()
    assert server.process.stdout is not None
    assert f"on {server.url} (1 worker)" in server.process.stdout.read().decode()
