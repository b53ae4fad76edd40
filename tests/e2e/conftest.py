"""End-to-end helpers: copy a project into a temp folder and drive the real `shipml` CLI.

The CLI runs in a child process (`python -m shipml`) exactly as a user or CI runs it, so these
tests see real exit codes, real stdout/stderr and a fresh interpreter per command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
OFFLINE = Path(__file__).with_name("_offline.py")
PROJECTS = {
    "credit": REPO / "examples" / "credit",
    "cancer": REPO / "tests" / "e2e" / "projects" / "cancer",
}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def shipml(project: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run `shipml ARGS --project PROJECT`, and fail if it tried to reach the network."""
    return _offline(project, [*args, "--project", str(project)], env)


def init(directory: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run `shipml init DIRECTORY ARGS`, and fail if it tried to reach the network."""
    return _offline(directory, ["init", str(directory), *args], env)


def _offline(project: Path, args: list[str], env: dict[str, str] | None) -> Result:
    log = project.parent / f"network-{os.getpid()}.log"
    log.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, str(OFFLINE), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **os.environ,
            "SHIPML_ACTOR": "e2e-tests",
            "SHIPML_NETWORK_LOG": str(log),
            # no test binds the default port 8080, and only the tests that mean to leave
            # a server running after `shipml run` do so (they stop it with `shipml down`)
            "SHIPML_SERVE__PORT": "0",
            "SHIPML_DEPLOY__IN_RUN": "never",
            "SHIPML_BUILD__BUILDER": "none",  # images are built in tests/integration/build
            **(env or {}),
        },
        stdin=subprocess.DEVNULL,
    )
    attempts = log.read_text() if log.exists() else ""
    assert not attempts, f"`shipml {' '.join(args)}` tried to reach the network:\n{attempts}"
    return Result(proc.returncode, proc.stdout, proc.stderr)


def copy_project(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(PROJECTS[name], target, ignore=shutil.ignore_patterns(".shipml", "__pycache__"))
    return target


@pytest.fixture
def project_copy(tmp_path: Path):  # type: ignore[no-untyped-def]
    return lambda name: copy_project(name, tmp_path)
