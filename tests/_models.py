"""Model folders crafted by hand, in the layout MLflow logs (MLmodel, model file, code/).

`hostile_pickle` unpickles into `open(marker, "w")`; `hostile_code` is a skops model whose
trusted type lives in `code/evil.py`, a module that writes the marker when imported. Loading
either one unverified leaves the marker file: the tests assert that nothing does.
`feature_model` is a model whose `code/features.py` decides its answers (a constant per
version), for the tests that two versions loaded side by side run their own code.
"""

from __future__ import annotations

import importlib
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import yaml

SIGNATURE = [{"type": "double", "name": n, "required": True} for n in ("x1", "x2", "x3")]


def mlmodel(folder: Path, *, model_file: str, fmt: str, trusted: list[str]) -> None:
    sklearn: dict[str, Any] = {
        "code": "code",
        "pickled_model": model_file,
        "serialization_format": fmt,
        "skops_trusted_types": trusted,
    }
    spec = {
        "flavors": {"sklearn": sklearn},
        "signature": {"inputs": json.dumps(SIGNATURE)},
        "metadata": {"shipml": {"model_name": folder.name, "positive_label": 1}},
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))


class _OpensMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def hostile_pickle(folder: Path, marker: Path) -> Path:
    """A cloudpickle-format model folder whose pickle creates `marker` when loaded."""
    (folder / "code").mkdir(parents=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(_OpensMarker(marker)))
    mlmodel(folder, model_file="model.pkl", fmt="cloudpickle", trusted=[])
    return folder


def _skops_of(module: str, source: str, build: str, where: Path) -> bytes:
    """skops bytes of `build` evaluated with `module` (written from `source`) importable;
    the module is forgotten again afterwards."""
    import skops.io

    where.mkdir(parents=True, exist_ok=True)
    (where / f"{module}.py").write_text(source)
    before = sys.modules.pop(module, None)
    sys.path.insert(0, str(where))
    try:
        mod = importlib.import_module(module)
        return bytes(skops.io.dumps(eval(build, {module: mod})))
    finally:
        sys.path.remove(str(where))
        sys.modules.pop(module, None)
        if before is not None:
            sys.modules[module] = before


EVIL_BUILD = """\
import numpy as np


class Thing:
    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        return np.tile([0.5, 0.5], (len(X), 1))
"""


def hostile_code(folder: Path, marker: Path, scratch: Path) -> Path:
    """A skops model folder of type `evil.Thing`, whose `code/evil.py` creates `marker` at
    import (and whose MLmodel vouches for that type itself)."""
    data = _skops_of("evil", EVIL_BUILD, "evil.Thing()", scratch)
    (folder / "code").mkdir(parents=True)
    evil = f"from pathlib import Path\nPath({str(marker)!r}).touch()\n" + EVIL_BUILD
    (folder / "code" / "evil.py").write_text(evil)
    (folder / "model.skops").write_bytes(data)
    mlmodel(folder, model_file="model.skops", fmt="skops", trusted=["evil.Thing"])
    return folder


def features_source(p: float) -> str:
    return f"""\
import numpy as np

P = {p!r}


class Model:
    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        return np.tile([1 - P, P], (len(X), 1))
"""


def feature_model(folder: Path, p: float, scratch: Path) -> Path:
    """A skops model `features.Model` that answers `p` for every row, because its own
    `code/features.py` says so (the skops file itself holds no number)."""
    data = _skops_of("features", features_source(0.0), "features.Model()", scratch)
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "features.py").write_text(features_source(p))
    (folder / "model.skops").write_bytes(data)
    mlmodel(folder, model_file="model.skops", fmt="skops", trusted=["features.Model"])
    return folder


def record_of(folder: Path, name: str = "m", version: str = "1") -> Any:
    """The registration record `folder` would get if registered now."""
    from shipml._hashing import tree_hash, tree_manifest
    from shipml.registry.manifest import Record, parse_manifest

    spec = yaml.safe_load((folder / "MLmodel").read_text())
    return Record(
        name=name,
        version=version,
        hash=tree_hash(folder),
        manifest=parse_manifest(tree_manifest(folder)),
        trusted_types=tuple(
            ((spec.get("flavors") or {}).get("sklearn") or {}).get("skops_trusted_types") or ()
        ),
    )
