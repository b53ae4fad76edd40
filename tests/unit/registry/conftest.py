"""A project with a real MLflow registry (SQLite) and state store, fresh for every test.

MLflow's first use of a SQLite file runs its schema migrations (seconds on a busy machine),
so one template project is made per session and copied. The registered "model" is a folder
MLflow is given as the version's source: these tests are about the registry's bookkeeping,
not about loading models, so nothing is trained.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipml.config import Project, load_project
from shipml.state.store import StateStore

HERE = Path(__file__).parent


@dataclass
class Reg:
    project: Project
    store: StateStore
    model_uri: str

    def register(self, run: str = "r1") -> int:
        from shipml.registry.models import register

        tags = {"shipml.run_id": run, "shipml.snapshot": "d@0"}
        return register(
            self.project, self.store, run_id="", model_uri=self.model_uri, tags=tags
        ).version

    def client(self):  # type: ignore[no-untyped-def]
        from mlflow import MlflowClient

        uri = self.project.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry") / "proj"
    root.mkdir()
    (root / "shipml.yaml").write_text("project: regtest\n")
    (root / "model").mkdir()
    (root / "model" / "MLmodel").write_text("flavors: {}\n")
    project = load_project(root, env={})
    from shipml.registry.models import list_versions

    list_versions(project)  # creates MLflow's tables
    StateStore(project.state_url).close()
    return root


@pytest.fixture
def reg(template: Path, tmp_path: Path) -> Iterator[Reg]:
    root = tmp_path / "proj"
    shutil.copytree(template, root)
    project = load_project(root, env={})
    store = StateStore(project.state_url)
    try:
        yield Reg(project, store, (root / "model").as_uri())
    finally:
        store.close()
