"""The model a server holds: loaded from an MLflow model folder without importing MLflow.

MLflow's own loader pulls in MLflow (seconds of import, hundreds of MB in an image) to read
three things: the `MLmodel` file (signature, skops trusted types, shipml metadata), the
project code the model needs (`code/`), and `model.skops`. The server reads them directly, so
it starts fast and its image needs no training stack. `resolve()` is the one place that may
import MLflow: to turn a `models:/name@alias` URI into a local folder.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipml.errors import UsageError
from shipml.serve.inputs import Batch, Schema

if TYPE_CHECKING:
    import pandas as pd


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


def load_model_dir(
    path: str | Path, *, name: str | None = None, version: str = "local"
) -> ServedModel:
    """Load an MLflow sklearn model folder (the one `shipml train` logs)."""
    import yaml

    path = Path(path)
    mlmodel = path / "MLmodel"
    if not mlmodel.exists():
        raise UsageError(
            f"{path} is not an MLflow model folder (no MLmodel file); pass the folder that "
            f"holds MLmodel, or a registry URI such as models:/credit@champion"
        )
    spec = yaml.safe_load(mlmodel.read_text())
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
    import json

    schema = Schema.from_mlflow(json.loads(signature["inputs"]))
    code = path / flavor.get("code", "code") if flavor.get("code") else None
    if code is not None and code.is_dir() and str(code) not in sys.path:
        sys.path.insert(0, str(code))  # the project's own modules the model refers to
    estimator = _load_estimator(path / flavor["pickled_model"], flavor)
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
        name=name or path.name,
        version=version,
        path=path,
        estimator=estimator,
        schema=schema,
        positive_label=positive,
        positive_index=classes.index(positive),
        metadata=meta,
    )


def _load_estimator(file: Path, flavor: dict[str, Any]) -> Any:
    fmt = flavor.get("serialization_format", "cloudpickle")
    if fmt == "skops":
        import skops.io

        return skops.io.load(file, trusted=flavor.get("skops_trusted_types") or [])
    import cloudpickle

    with open(file, "rb") as f:
        return cloudpickle.load(f)


def resolve(uri: str, *, tracking_uri: str | None, cache_dir: Path) -> tuple[Path, str, str]:
    """A model URI as (local folder, model name, version).

    `models:/name@alias` and `models:/name/3` are resolved in the MLflow registry at
    `tracking_uri` and downloaded once into `cache_dir/name/version`; anything else is taken
    as a local model folder.
    """
    if not uri.startswith("models:/"):
        return Path(uri), _name_in(Path(uri)), "local"
    if tracking_uri is None:
        raise UsageError(f"{uri} needs a tracking store: run from the project or pass --project")
    from shipml._libs import mlflow_client

    client = mlflow_client(tracking_uri)
    from mlflow.exceptions import MlflowException

    ref = uri.removeprefix("models:/")
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, number = ref.rsplit("/", 1)
            mv = client.get_model_version(name, number)
    except (MlflowException, ValueError):
        raise UsageError(
            f"{uri} is not in the registry at {tracking_uri}; list versions with "
            f"`shipml registry versions`"
        ) from None
    target = cache_dir / mv.name / str(mv.version)
    if not (target / "MLmodel").exists():
        import mlflow

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial")
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{mv.name}/{mv.version}", dst_path=str(tmp)
        )
        tmp.rename(target)
    return target, mv.name, str(mv.version)


def _name_in(folder: Path) -> str:
    """The model name a shipml-trained folder records, else the folder's name."""
    import yaml

    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text())
        return str(spec["metadata"]["shipml"]["model_name"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return folder.resolve().name
