"""The registered model a build starts from: its registry record, files and lock.

A model version is fingerprinted when it is registered (registry/manifest.py: tags
`shipml.model_hash`, `shipml.model_manifest`, `shipml.skops_trusted_types`). A build reads
that registration record, downloads the version afresh and refuses it when any file differs
from what was registered, naming the files; the record goes into the image with the model.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from shipml._libs import mlflow_client
from shipml.build.context import ModelRef
from shipml.config import Project
from shipml.errors import BuildError, RegistryError
from shipml.registry.manifest import HASH_TAG, Record, download, read_record

__all__ = ["fetch_lock", "fetch_model", "model_ref", "python_version"]

LOCK = "environment/requirements.lock"


def model_ref(project: Project, version: int | None) -> ModelRef:
    """The version to build: `version`, or the one the candidate alias points at."""
    client = mlflow_client(project.tracking_uri)
    from mlflow.exceptions import MlflowException

    name, alias = project.model_name, project.config.registry.candidate_alias
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if version is None
            else client.get_model_version(name, str(version))
        )
    except MlflowException:
        which = f"alias {alias!r}" if version is None else f"version {version}"
        raise RegistryError(
            f"model {name!r} has no {which}; register one with `shipml run` or `shipml "
            f"register`, and list versions with `shipml registry versions`"
        ) from None
    tags = dict(mv.tags or {})
    return ModelRef(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id or "",
        source=mv.source or f"models:/{mv.name}/{mv.version}",
        git_commit=tags.get("shipml.git_commit", "none"),
        snapshot=tags.get("shipml.snapshot", ""),
        snapshot_hash=tags.get("shipml.snapshot_hash", ""),
        recorded_hash=tags.get(HASH_TAG),
        created=int((mv.creation_timestamp or 0) // 1000),
    )


def fetch_model(project: Project, ref: ModelRef, dest: Path) -> Record:
    """Download `ref`'s files into `dest`, verified against its registration record; the
    record. A file that differs is refused, named, and nothing lands in `dest`."""
    record = read_record(project.tracking_uri, ref.name, str(ref.version))
    if dest.exists():
        shutil.rmtree(dest)
    download(project.tracking_uri, record, dest)
    return record


def fetch_lock(project: Project, ref: ModelRef) -> str:
    """The training run's resolved environment (`name==version` per line)."""
    client = mlflow_client(project.tracking_uri)
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="shipml-lock-") as tmp:
        try:
            path = client.download_artifacts(ref.run_id, LOCK, tmp)
        except (MlflowException, OSError):
            raise BuildError(
                f"MLflow run {ref.run_id} of {ref.name}:{ref.version} has no {LOCK}, so the "
                f"image cannot pin what the model was trained with; train it again with this "
                f"shipml (it logs the lock) and register the new version"
            ) from None
        return Path(path).read_text()


def python_version(model_dir: Path) -> str:
    """MAJOR.MINOR of the Python the model was trained with (from MLmodel)."""
    spec: dict[str, Any] = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    full = str(spec.get("flavors", {}).get("python_function", {}).get("python_version", ""))
    parts = full.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise BuildError(
            f"{model_dir / 'MLmodel'} records no Python version (python_function."
            f"python_version: {full!r}); the image cannot match the training interpreter"
        )
    return ".".join(parts[:2])
