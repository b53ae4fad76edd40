"""What a registered version's files must be: the fingerprint taken when it was registered.

`fingerprint()` runs at registration, on the logged model's files, and returns the tags the
version is registered with:

    shipml.model_hash           sha256 of the manifest text (the folder's `tree_hash`)
    shipml.model_manifest       the manifest: `<hex>  <path>` per file, as `sha256sum` writes
    shipml.skops_trusted_types  JSON list: the types skops may build when loading the model

A manifest longer than a tag can hold (a model with many code files) is logged instead as
the artifact `shipml/model.sha256` of the training run, and the tag
`shipml.model_manifest_artifact` names it. Wherever the manifest is kept, the hash tag
authenticates it: a manifest whose sha256 is not the recorded hash is refused.

`Record` is that registration record, read from the registry (`read_record`) or from a file
the build bakes into the image (`Record.load`). `verify()` checks a folder against it, file
by file, before anything in the folder is imported or unpickled: a changed, missing or extra
file (a stray `__pycache__` too: Python would run it) is refused, naming the files.

Only `fingerprint`, `read_record` and `download` import MLflow; the rest is the standard
library, so the serving image can verify without MLflow.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipml._hashing import sha256_bytes, tree_manifest
from shipml.errors import ModelIntegrityError, RegistryError

if TYPE_CHECKING:
    from shipml.config import Project

__all__ = [
    "HASH_TAG",
    "MANIFEST_ARTIFACT_TAG",
    "MANIFEST_TAG",
    "TRUSTED_TAG",
    "Record",
    "download",
    "fingerprint",
    "parse_manifest",
    "read_record",
    "verify",
]

HASH_TAG = "shipml.model_hash"
MANIFEST_TAG = "shipml.model_manifest"
MANIFEST_ARTIFACT_TAG = "shipml.model_manifest_artifact"
TRUSTED_TAG = "shipml.skops_trusted_types"
MANIFEST_ARTIFACT = "shipml/model.sha256"
_TAG_LIMIT = 5000  # MLflow's limit on a tag value is 8000 characters


@dataclass(frozen=True)
class Record:
    """A registered version as its registration recorded it."""

    name: str
    version: str
    hash: str  # sha256 of the manifest text
    manifest: dict[str, str]  # relative path -> sha256 hex
    trusted_types: tuple[str, ...]
    source: str = ""  # the logged model's URI (the files that were hashed); "" in an image

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "trusted_types": list(self.trusted_types)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        record = cls(
            name=str(data["name"]),
            version=str(data["version"]),
            hash=str(data["hash"]),
            manifest={str(k): str(v) for k, v in dict(data["manifest"]).items()},
            trusted_types=tuple(str(t) for t in data["trusted_types"]),
            source=str(data.get("source", "")),
        )
        if sha256_bytes(manifest_text(record.manifest).encode()) != record.hash:
            raise ModelIntegrityError(
                f"the registration record of {record.label} is inconsistent: its manifest does "
                f"not hash to its recorded hash {record.hash}; rebuild it from the registry"
            )
        return record

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> Record:
        """A record written by `save` (the build bakes one into the image)."""
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelIntegrityError(
                f"{path} is not a registration record ({type(exc).__name__}: {exc}); pass the "
                f"model.record.json that `shipml build` wrote"
            ) from None


def parse_manifest(text: str) -> dict[str, str]:
    # split on "\n" only: `splitlines` also splits on form feeds and the like, which a file
    # name may hold (tree_manifest refuses only newlines)
    pairs = (line.split("  ", 1) for line in text.split("\n") if "  " in line)
    return {path: digest for digest, path in pairs}


def manifest_text(manifest: dict[str, str]) -> str:
    return "".join(f"{manifest[path]}  {path}\n" for path in sorted(manifest))


def verify(
    folder: Path, record: Record, *, keep: Iterable[str] = (), where: str | None = None
) -> dict[str, bytes]:
    """Check every file under `folder` against `record`; raise naming each one that differs.

    Returns the contents of the files named in `keep`, as read for the check, so that the
    caller loads exactly the bytes that were verified (no window to swap the file). `where`
    names the copy in the message (default: the folder, which deleting fetches again).
    """
    wanted, found, kept = set(keep), {}, {}
    root = Path(folder)
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = "symlink"
            continue
        if path.is_dir():
            continue
        data = path.read_bytes() if rel in wanted else None
        found[rel] = hashlib.sha256(data).hexdigest() if data is not None else _hex(path)
        if data is not None:
            kept[rel] = data
    changed = sorted(p for p in record.manifest if p in found and found[p] != record.manifest[p])
    missing = sorted(p for p in record.manifest if p not in found)
    extra = sorted(p for p in found if p not in record.manifest)
    if changed or missing or extra:
        kinds = (("changed", changed), ("missing", missing), ("not registered", extra))
        parts = [f"{what}: {', '.join(names)}" for what, names in kinds if names]
        fix = (
            "restore it there, or train and register again"
            if where
            else f"delete {root} to fetch it again from the artifact store"
        )
        raise ModelIntegrityError(
            f"model {record.label} in {where or root} does not match what was registered "
            f"({'; '.join(parts)}); nothing of it was loaded or run. The files were altered "
            f"after registration: {fix}"
        )
    return kept


def _hex(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ---- the registry side (imports MLflow) ---------------------------------------------------


def fingerprint(project: Project, model_uri: str, run_id: str) -> dict[str, str]:
    """The tags recording a logged model's files, taken at registration.

    The skops trusted types come from the model as it was logged by this project's training
    run (its MLmodel, covered by the hash): from then on they are read from these tags,
    never from a folder being loaded.
    """
    import yaml

    from shipml._libs import mlflow_client

    client = mlflow_client(project.tracking_uri)
    import mlflow

    with tempfile.TemporaryDirectory(prefix="shipml-model-") as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        manifest = tree_manifest(folder)
        spec = yaml.safe_load((folder / "MLmodel").read_text()) or {}
    flavor = (spec.get("flavors") or {}).get("sklearn") or {}
    trusted = json.dumps(sorted(flavor.get("skops_trusted_types") or []))
    if len(trusted) > _TAG_LIMIT:
        raise RegistryError(
            f"{model_uri} trusts {len(flavor['skops_trusted_types'])} types, too many to "
            f"record in a registry tag; keep the model's own types to a few functions/classes"
        )
    tags = {HASH_TAG: sha256_bytes(manifest.encode()), TRUSTED_TAG: trusted}
    if len(manifest) <= _TAG_LIMIT:
        tags[MANIFEST_TAG] = manifest
    else:
        client.log_text(run_id, manifest, MANIFEST_ARTIFACT)
        tags[MANIFEST_ARTIFACT_TAG] = MANIFEST_ARTIFACT
    return tags


def read_record(tracking_uri: str, name: str, ref: str) -> Record:
    """The registration record of `name` at `ref` (a version number or `@alias`)."""
    from shipml._libs import mlflow_client

    client = mlflow_client(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        if ref.startswith("@"):
            mv = client.get_model_version_by_alias(name, ref[1:])
        else:
            mv = client.get_model_version(name, ref)
    except (MlflowException, ValueError):
        which = f"alias {ref[1:]!r}" if ref.startswith("@") else f"version {ref}"
        raise RegistryError(
            f"model {name!r} has no {which} in the registry at {tracking_uri}; list versions "
            f"with `shipml registry versions`"
        ) from None
    tags, label = dict(mv.tags or {}), f"{mv.name}:{mv.version}"
    missing = [t for t in (HASH_TAG, TRUSTED_TAG) if t not in tags]
    if missing:
        raise ModelIntegrityError(
            f"model {label} was registered without a fingerprint (no tag {missing[0]}), so its "
            f"files cannot be verified and it is not loaded; register it again with this "
            f"shipml (`shipml register`)"
        )
    text = tags.get(MANIFEST_TAG)
    if text is None and MANIFEST_ARTIFACT_TAG in tags and mv.run_id:
        with tempfile.TemporaryDirectory(prefix="shipml-manifest-") as tmp:
            try:
                path = client.download_artifacts(mv.run_id, tags[MANIFEST_ARTIFACT_TAG], tmp)
            except (MlflowException, OSError):
                path = None
            text = Path(path).read_text() if path else None
    if text is None:
        raise ModelIntegrityError(
            f"model {label} records no manifest of its files (tag {MANIFEST_TAG}), so they "
            f"cannot be verified; register it again with this shipml"
        )
    return Record.from_dict(
        {
            "name": mv.name,
            "version": str(mv.version),
            "hash": tags[HASH_TAG],
            "manifest": parse_manifest(text),
            "trusted_types": json.loads(tags[TRUSTED_TAG]),
            "source": mv.source or f"models:/{mv.name}/{mv.version}",
        }
    )


def download(tracking_uri: str, record: Record, dest: Path) -> None:
    """Fetch `record`'s files from the artifact store into `dest`, verified before they land.

    A copy that does not match is never moved into place, so a fixed artifact store is
    fetched again on the next try.
    """
    from shipml._libs import mlflow_client

    mlflow_client(tracking_uri)
    import mlflow

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=record.source, dst_path=tmp))
        verify(folder, record, where=f"the artifact store ({record.source})")
        if dest.exists():
            shutil.rmtree(dest)
        folder.rename(dest)
