"""The model a server holds: verified, then loaded from its MLflow folder without MLflow.

One function loads every model shipml serves (`load`): the server's start-up and its admin
API, deploy, promote and rollback (through the server), and the build's in-process check. It
takes a `Source`: a folder and the registration record that vouches for it. Before anything
in the folder is imported or unpickled, every file is checked against the manifest recorded
at registration (registry/manifest.py), so a file edited in the artifact store or the serve
cache is refused, naming it. The skops trusted types come from that record, not from the
folder's own MLmodel. Pickled models (`serialization_format: cloudpickle`) run arbitrary code
when loaded and are refused unless the project opts in (`serve.allow_pickle`).

The one exception is a folder the user explicitly trusts (`shipml serve FOLDER
--trust-folder`, for local development): it is loaded as it is, and says so.

Each loaded version's `code/` modules are imported afresh for it and kept under a namespace
of its own (`_code_namespace`), never under their plain names in `sys.modules`: two versions
whose `features.py` differ each run their own.

`resolve()` turns a registry reference (`models:/name@alias`, `models:/name/3`) into a
verified Source in the serve cache; it is the one place that imports MLflow.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipml.errors import ModelIntegrityError, UsageError
from shipml.serve.inputs import Batch, Schema

if TYPE_CHECKING:
    import pandas as pd

    from shipml.registry.manifest import Record

REF = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][\w.\-]*)(?:/(?P<version>\d+)|@(?P<alias>[\w\-]+))$"
)
"""A registry reference: `models:/name/3` or `models:/name@alias`, nothing else."""
_IMPORTS = threading.Lock()  # sys.modules and sys.path are process-wide: one load at a time


@dataclass(frozen=True)
class ServedModel:
    """A loaded model, ready to predict the positive-class probability of a Batch."""

    name: str
    version: str
    path: Path
    estimator: Any
    schema: Schema
    positive_label: Any
    positive_index: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def frame(self, batch: Batch) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(batch.columns, copy=False)

    def predict(self, batch: Batch) -> np.ndarray:
        """Positive-class probabilities, one per row, as float64.

        scikit-learn re-validates fitted parameters and scans inputs for NaN/inf on every
        call; for a small model that is most of the time of a call. The inputs were already
        checked against the signature, so both checks are skipped (about a third of the
        call), and the output is checked instead: a model that cannot take a missing value
        yields NaN, which is reported as an error rather than returned.
        """
        import sklearn

        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            proba = self.estimator.predict_proba(self.frame(batch))
        out = np.ascontiguousarray(proba[:, self.positive_index], dtype=np.float64)
        if not np.isfinite(out).all():
            raise ValueError(
                f"the model returned {int((~np.isfinite(out)).sum())} non-finite probabilities; "
                f"does it accept missing values? (serve.missing_values: reject refuses them)"
            )
        return out


@dataclass(frozen=True)
class Source:
    """A model folder and what vouches for its files: the registration record, or (only for
    `trusted_folder`) the user's word."""

    path: Path
    name: str
    version: str
    record: Record | None
    trusted: bool = False

    @classmethod
    def registered(cls, path: Path, record: Record) -> Source:
        return cls(Path(path), record.name, record.version, record)

    @classmethod
    def trusted_folder(
        cls, path: Path, *, name: str | None = None, version: str = "local"
    ) -> Source:
        """A folder served as it is, unverified (local development, `--trust-folder`)."""
        return cls(Path(path), name or _name_in(Path(path)), version, None, trusted=True)


def preflight(
    source: Source, *, allow_pickle: bool = False
) -> tuple[dict[str, Any], dict[str, Any], Schema]:
    """Everything `load` checks before it imports or unpickles anything: the files against
    the record, the MLmodel file, the signature, the serialization format. Returns the parsed
    MLmodel, its sklearn flavor and the input schema."""
    import json

    import yaml

    path = source.path
    if source.record is None and not source.trusted:
        raise ModelIntegrityError(
            f"{path} comes with no registration record, so nothing vouches for its files; "
            f"serve a registry reference (models:/NAME/VERSION), or trust the folder "
            f"explicitly (shipml serve FOLDER --trust-folder)"
        )
    if source.record is not None:
        from shipml.registry.manifest import verify

        verify(path, source.record)  # every file, before anything of it is read
    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        raise UsageError(
            f"{path} is not an MLflow model folder (no MLmodel file); pass the folder that "
            f"holds MLmodel, or a registry URI such as models:/credit@champion"
        )
    spec = yaml.safe_load(_read(source, "MLmodel")) or {}
    flavor = spec.get("flavors", {}).get("sklearn")
    if flavor is None:
        raise UsageError(
            f"{path} holds no scikit-learn model (flavors: {list(spec.get('flavors', {}))})"
        )
    signature = spec.get("signature") or {}
    if not signature.get("inputs"):
        raise UsageError(
            f"{path} has no input signature; log the model with one (shipml train does)"
        )
    schema = Schema.from_mlflow(json.loads(signature["inputs"]))
    fmt = flavor.get("serialization_format", "cloudpickle")
    if fmt != "skops" and not allow_pickle:
        raise ModelIntegrityError(
            f"model {source.name}:{source.version} is saved as {fmt} (MLmodel "
            f"serialization_format), and loading a pickle runs whatever code it holds; shipml "
            f"refuses pickles unless the project opts in: set serve.allow_pickle: true in "
            f"shipml.yaml (or SHIPML_SERVE__ALLOW_PICKLE=true), or save the model with skops"
        )
    return spec, flavor, schema


def load(source: Source, *, allow_pickle: bool = False) -> ServedModel:
    """Verify `source`'s files against its registration, then load the model."""
    spec, flavor, schema = preflight(source, allow_pickle=allow_pickle)
    path, fmt = source.path, flavor.get("serialization_format", "cloudpickle")
    trusted = (
        list(source.record.trusted_types)
        if source.record is not None
        else list(flavor.get("skops_trusted_types") or [])
    )
    data = _read(source, str(flavor["pickled_model"]))
    code = path / flavor["code"] if flavor.get("code") else None
    with _own_code(code, _code_namespace(source)):
        estimator = _load_estimator(data, fmt, trusted)
    meta = (spec.get("metadata") or {}).get("shipml", {})
    classes = [
        c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [0, 1])
    ]
    positive = meta.get("positive_label", classes[-1] if classes else 1)
    if positive not in classes:
        matches = [c for c in classes if str(c) == str(positive)]
        if len(matches) != 1:
            raise UsageError(
                f"positive label {positive!r} is not one of the model's classes {classes}"
            )
        positive = matches[0]
    return ServedModel(
        name=source.name,
        version=source.version,
        path=path,
        estimator=estimator,
        schema=schema,
        positive_label=positive,
        positive_index=classes.index(positive),
        metadata=meta,
    )


def _read(source: Source, rel: str) -> bytes:
    """A file's bytes, checked again against the record as read: what is loaded is what was
    verified, even if the file is swapped after `verify`."""
    import hashlib

    file = source.path / rel
    data = file.read_bytes()
    record = source.record
    if record is not None and record.manifest.get(rel) != hashlib.sha256(data).hexdigest():
        raise ModelIntegrityError(
            f"model {record.label}: {file} changed while it was being loaded (changed: {rel}); "
            f"nothing of it was loaded. Delete {source.path} to fetch it again"
        )
    return data


def _load_estimator(data: bytes, fmt: str, trusted: list[str]) -> Any:
    if fmt == "skops":
        import skops.io

        return skops.io.loads(data, trusted=trusted)
    import cloudpickle

    return cloudpickle.loads(data)


def _code_namespace(source: Source) -> str:
    import hashlib

    key = source.record.hash if source.record else str(source.path.resolve())
    return f"_shipml_code_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@contextmanager
def _own_code(code: Path | None, namespace: str) -> Iterator[None]:
    """Import the version's `code/` modules afresh while loading, then move them under
    `namespace` and put back whatever held their plain names before.

    skops (and pickle) find a type such as `features.prepare` by importing `features`; a
    module of that name already imported (by another version, or by the process) would be
    taken instead of this version's. The loaded objects keep their own modules' functions.
    No bytecode is written: a `__pycache__` in the folder would fail the next verification.
    """
    if code is None or not code.is_dir():
        yield
        return
    names = {
        p.stem if p.is_file() else p.name
        for p in code.iterdir()
        if (p.is_file() and p.suffix == ".py") or (p.is_dir() and p.name != "__pycache__")
    }

    def own(module: str) -> bool:
        return module.split(".", 1)[0] in names

    with _IMPORTS:
        saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if own(k)]}
        bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        entry = str(code)
        sys.path.insert(0, entry)
        import importlib

        importlib.invalidate_caches()
        try:
            yield
        finally:
            if entry in sys.path:
                sys.path.remove(entry)
            sys.dont_write_bytecode = bytecode
            for k in [k for k in sys.modules if own(k)]:
                sys.modules[f"{namespace}.{k}"] = sys.modules.pop(k)
            sys.modules.update(saved)


def resolve(
    ref: str, *, tracking_uri: str | None, cache_dir: Path, model_name: str | None = None
) -> Source:
    """A registry reference as a verified Source in the serve cache.

    `models:/name@alias` and `models:/name/3` are looked up in the MLflow registry at
    `tracking_uri`; the version's files are fetched from the artifact store into
    `cache_dir/name/version` when not there yet, and verified against the registration
    record either way (a cached copy is checked on every load: an edit there would otherwise
    be served by every later release). With `model_name`, only that model is accepted.
    """
    from shipml.registry.manifest import download, read_record, verify

    match = REF.match(ref)
    if match is None:
        raise UsageError(
            f"{ref!r} is not a registry reference; pass models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    if tracking_uri is None:
        raise UsageError(f"{ref} needs a tracking store: run from the project or pass --project")
    name = match["name"]
    if model_name is not None and name != model_name:
        raise UsageError(f"{ref} is not a version of {model_name!r}, the model served here")
    version = match["version"]
    record = read_record(tracking_uri, name, version if version else f"@{match['alias']}")
    target = cache_dir / record.name / record.version
    if not target.exists():
        download(tracking_uri, record, target)
    verify(target, record)
    return Source.registered(target, record)


def _name_in(folder: Path) -> str:
    """The model name a shipml-trained folder records, else the folder's name."""
    import yaml

    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text())
        return str(spec["metadata"]["shipml"]["model_name"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return folder.resolve().name
