"""The registered model a build starts from: its registry record, files and lock.

A model version is hashed when it is registered (`fingerprint`, tags `shipml.model_hash`
and `shipml.model_manifest`). A build downloads the version afresh and refuses it when the
files no longer hash to what was registered, naming the files that changed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from shipml._hashing import tree_hash, tree_manifest
from shipml._libs import mlflow_client
from shipml.build.context import ModelRef
from shipml.config import Project
from shipml.errors import BuildError, RegistryError

__all__ = ["fetch_lock", "fetch_model", "fingerprint", "model_ref", "python_version"]

HASH_TAG = "shipml.model_hash"
MANIFEST_TAG = "shipml.model_manifest"
LOCK = "environment/requirements.lock"
_TAG_LIMIT = 5000  # MLflow's limit on a tag value is 8000 characters


def fingerprint(project: Project, model_uri: str) -> dict[str, str]:
    """Registry tags recording the logged model's files: their manifest and its hash."""
    mlflow_client(project.tracking_uri)
    import mlflow

    with tempfile.TemporaryDirectory(prefix="shipml-model-") as tmp:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        manifest = tree_manifest(folder)
        tags = {HASH_TAG: tree_hash(folder)}
    if len(manifest) <= _TAG_LIMIT:
        tags[MANIFEST_TAG] = manifest
    return tags


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


def fetch_model(project: Project, ref: ModelRef, dest: Path) -> str:
    """Download `ref`'s files into `dest` and check them against the registration; the hash.

    The files come from the version's source (the logged model), as at registration: a
    download through the registry adds a file of its own (registered_model_meta).
    """
    mlflow_client(project.tracking_uri)
    import mlflow

    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shipml-model-", dir=dest.parent) as tmp:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=ref.source, dst_path=tmp)
        shutil.copytree(folder, dest)
    found = tree_hash(dest)
    if ref.recorded_hash is not None and found != ref.recorded_hash:
        raise BuildError(
            f"model {ref.name}:{ref.version} does not match what was registered: its files "
            f"hash to {found}, registration recorded {ref.recorded_hash}"
            f"{_changed(project, ref, dest)}; the artifact was altered or corrupted after "
            f"registration. Restore it in the artifact store, or train and register again"
        )
    return found


def _changed(project: Project, ref: ModelRef, folder: Path) -> str:
    client = mlflow_client(project.tracking_uri)
    tags = client.get_model_version(ref.name, str(ref.version)).tags or {}
    recorded = _parse_manifest(tags.get(MANIFEST_TAG, ""))
    if not recorded:
        return ""
    now = _parse_manifest(tree_manifest(folder))
    changed = sorted(p for p in recorded.keys() | now.keys() if recorded.get(p) != now.get(p))
    return f" (changed: {', '.join(changed)})" if changed else ""


def _parse_manifest(text: str) -> dict[str, str]:
    pairs = (line.split("  ", 1) for line in text.splitlines() if "  " in line)
    return {path: digest for digest, path in pairs}


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
