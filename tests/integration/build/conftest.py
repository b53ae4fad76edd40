"""Fixtures for building real images: the test base image and a registered credit model.

`base` is Debian bookworm + python3 in the local containers storage (tests/_services/buildah,
built once per machine). `credit` is a git-tracked copy of examples/credit with one model
registered (ingest, train, evaluate, register; the version carries the hash `shipml build`
checks). `build_env` points a project at buildah and the test base through SHIPML_BUILD__*.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests._services.buildah import base_image

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def base() -> str:
    return base_image()


@pytest.fixture(scope="session")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shipml.config import load_project
    from shipml.pipeline import run_stages

    project = tmp_path_factory.mktemp("build") / "credit"
    shutil.copytree(
        REPO / "examples" / "credit",
        project,
        ignore=shutil.ignore_patterns(".shipml", "__pycache__"),
    )
    git = ["git", "-c", "user.name=tests", "-c", "user.email=tests@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "credit example"], cwd=project, check=True)
    stages = ["ingest", "train", "evaluate", "register"]
    result = run_stages(load_project(project, env={}), stages)
    assert result.ok, result.to_dict()
    return project


@pytest.fixture(scope="session")
def build_env(base: str) -> dict[str, str]:
    return {"SHIPML_BUILD__BUILDER": "buildah", "SHIPML_BUILD__BASE": base}
