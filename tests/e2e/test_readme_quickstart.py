"""The README's quickstart, executed as written: its files, then its commands.

Keeps the first thing a new user reads honest: if the quickstart stops working, this fails.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.conftest import REPO, shipml

pytestmark = pytest.mark.slow


def section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {title}")
    return text[start : text.index("\n## ", start + 3)]


def quickstart() -> str:
    return section("Quickstart")


def fenced(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def loans(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    income = rng.lognormal(10.5, 0.5, rows).round(2)
    age = rng.integers(18, 80, rows)
    purpose = rng.choice(["car", "home", "study", "other"], rows)
    risk = -1.5 - (np.log(income) - 10.5) * 2 + (purpose == "other") * 0.8
    default = np.where(rng.random(rows) < 1 / (1 + np.exp(-risk)), "yes", "no")
    return pd.DataFrame({"income": income, "age": age, "purpose": purpose, "default": default})


def test_readme_quickstart_works_as_written(tmp_path: Path) -> None:
    section = quickstart()
    project = tmp_path / "loans"
    (project / "data").mkdir(parents=True)
    (project / "tests").mkdir()
    loans().to_csv(project / "data" / "loans.csv", index=False)
    for block in fenced(section, "python") + fenced(section, "yaml"):
        name = block.splitlines()[0].lstrip("# ").split(":")[0].strip()
        (project / name).write_text(block)

    commands = [
        shlex.split(line.split("#")[0])
        for block in fenced(section, "bash")
        for line in block.splitlines()
        if line.startswith("shipml ")
    ]
    assert len(commands) >= 6
    as_a_user = {"SHIPML_DEPLOY__IN_RUN": "first"}  # `shipml run` ends serving version 1
    try:
        for command in commands:
            out = shipml(project, *command[1:], env=as_a_user)
            assert out.code == 0, f"{' '.join(command)}\n{out.stdout}\n{out.stderr}"
            if command[1] == "run":
                assert "try it:\ncurl -s http://127.0.0.1:" in out.stdout
        assert (project / "expectations" / "loans.json").exists()
        status = shipml(project, "status", "--json").json
        assert status["target"]["ready"] and status["aliases"]["champion"] == 1
        serve_as_the_readme_says(project)
    finally:
        assert shipml(project, "down").code == 0


def serve_as_the_readme_says(project: Path) -> None:
    """The 'Serving a model' snippet: start the server it names, send the request it shows."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    snippet = fenced(section("Serving a model"), "bash")[0]
    serve = shlex.split(
        next(x for x in snippet.splitlines() if x.startswith("shipml serve")).split("#")[0]
    )
    body = json.loads(re.search(r"-d '(.*?)'", snippet, flags=re.S).group(1))  # type: ignore[union-attr]
    port = "18765"
    cmd = [sys.executable, "-m", "shipml", *serve[1:], "--project", str(project), "--port", port]
    server = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert r.status_code == 200, r.text
        [p] = r.json()["predictions"]
        assert 0.0 <= p <= 1.0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
