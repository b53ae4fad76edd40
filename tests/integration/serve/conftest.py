"""A real model for the server tests: the credit example, trained once per session.

`credit_project` is a copy of examples/credit with one trained model, registered as
`models:/credit/1` (fingerprinted as `shipml register` does; the evaluation gates are not
what these tests are about); `model_dir` is that model's MLflow folder in the artifact
store, which tests serve as a trusted folder (`--trust-folder`). `served` starts `shipml
serve` as a real process on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[3]
TOKEN = "test-admin-token-0123456789"


@pytest.fixture(scope="session")
def credit_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shipml.config import load_project
    from shipml.pipeline import run_stages

    project = tmp_path_factory.mktemp("serve") / "credit"
    shutil.copytree(REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns(".shipml"))
    loaded = load_project(project, env={})
    result = run_stages(loaded, ["ingest", "train"])
    assert result.ok, result.to_dict()
    register_trained(loaded, result.steps[-1].outputs)
    return project


def register_trained(project: Any, trained: dict[str, Any]) -> int:
    """Register a trained model with its fingerprint, as the register stage does."""
    from shipml.registry.manifest import fingerprint
    from shipml.registry.models import register
    from shipml.state.store import StateStore

    run_id, uri = trained["mlflow_run_id"], trained["model_uri"]
    tags = fingerprint(project, uri, run_id)
    store = StateStore(project.state_url)
    return register(project, store, run_id=run_id, model_uri=uri, tags=tags).version


@pytest.fixture(scope="session")
def model_dir(credit_project: Path) -> Path:
    [mlmodel] = list((credit_project / ".shipml" / "artifacts").glob("models/*/artifacts/MLmodel"))
    return mlmodel.parent


@pytest.fixture(scope="session")
def rows(credit_project: Path) -> pd.DataFrame:
    frame = pd.read_csv(credit_project / "data" / "lending_club.csv.gz")
    return frame.drop(columns=["Class", "loan_id"]).head(300)


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    project: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(
    model: Path | str,
    project: Path,
    *extra: str,
    wait: float = 120,
    env: dict[str, str] | None = None,
) -> Served:
    """`shipml serve MODEL`: a registry reference, or a folder (served with --trust-folder);
    `env` adds variables (e.g. SHIPML_SERVE__... overrides)."""
    port = free_port()
    if isinstance(model, Path):
        extra = ("--trust-folder", *extra)
    env = {**os.environ, "SHIPML_ADMIN_TOKEN": TOKEN, **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "shipml",
        "serve",
        str(model),
        "--project",
        str(project),
        "--port",
        str(port),
        *extra,
    ]
    process = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {process.stdout.read().decode() if process.stdout else ''}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Served(url, process, project)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("server did not become ready")


@pytest.fixture
def served(model_dir: Path, credit_project: Path) -> Iterator[Served]:
    server = start_server(model_dir, credit_project)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(10)
