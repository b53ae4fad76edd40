"""The tests stage: run the project's own pytest suite as a gate.

It runs in a child process with the project folder as working directory, so the user's
tests see their project exactly as they would from a shell, and a crash in them cannot take
the pipeline down with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from shipml.config import Project
from shipml.errors import ConfigError


@dataclass(frozen=True)
class TestReport:
    passed: bool
    exit_code: int
    summary: str
    output_tail: str
    seconds: float

    __test__ = False  # not a pytest test class, whatever its name


def run_project_tests(project: Project, *, timeout_s: float = 1800) -> TestReport:
    cfg = project.config.tests
    path = project.path(cfg.path)
    if not path.exists():
        raise ConfigError(
            f"tests.path {cfg.path!r} does not exist in {project.root}; add the project's tests "
            f"there or set tests.enabled: false in shipml.yaml"
        )
    cmd = [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider", *cfg.args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=project.root, capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return TestReport(False, -1, f"timed out after {timeout_s:.0f} s", "", timeout_s)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    summary = lines[-1].strip("= ") if lines else "no output"
    # exit 5 is pytest's "no tests collected": an empty suite proves nothing, so it fails.
    return TestReport(
        passed=proc.returncode == 0,
        exit_code=proc.returncode,
        summary=summary if proc.returncode != 5 else f"no tests collected in {cfg.path}",
        output_tail="\n".join(lines[-30:]),
        seconds=time.perf_counter() - start,
    )
