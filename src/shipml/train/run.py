"""Train: split a snapshot, run the user's function inside an MLflow run, log everything.

What is logged, so a model can always be traced and rebuilt: params and split settings, the
snapshot as an MLflow dataset input (name `dataset@version`, digest from its content hash),
the git commit and dirty flag, the model with signature and input example, the project's code
it needs to load, and the versions of every installed distribution.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipml._libs import mlflow_client
from shipml.config import Project
from shipml.errors import ConfigError
from shipml.train.entrypoint import (
    check_estimator,
    load_train_function,
    project_modules,
    user_code,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SnapshotRef:
    """The snapshot a model is trained on, as training needs to know it."""

    dataset: str
    version: int
    content_hash: str
    uri: str

    @property
    def label(self) -> str:
        return f"{self.dataset}@{self.version}"


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    target: str
    positive_label: Any

    @property
    def X_test(self) -> pd.DataFrame:
        return self.test[self.features]

    @property
    def y_test(self) -> pd.Series:
        return self.test[self.target]


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    model_uri: str
    model: Any
    split: Split
    git: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def split_frame(project: Project, frame: pd.DataFrame) -> Split:
    """Seeded (and by default stratified) train/test split, with the label checked."""
    from sklearn.model_selection import train_test_split

    cfg = project.config.training
    if cfg.target not in frame.columns:
        raise ConfigError(
            f"training.target {cfg.target!r} is not a column of the snapshot (columns: "
            f"{', '.join(map(str, frame.columns))}); fix training.target in shipml.yaml"
        )
    missing = [c for c in cfg.drop if c not in frame.columns]
    if missing:
        raise ConfigError(f"training.drop names columns the snapshot lacks: {missing}")
    labels = sorted(frame[cfg.target].dropna().unique().tolist(), key=str)
    if len(labels) != 2:
        raise ConfigError(
            f"training.target {cfg.target!r} must have exactly two labels for a binary "
            f"classifier; it has {len(labels)}: {labels[:10]}"
        )
    positive = _positive_label(cfg.positive_label, labels, cfg.target)
    if frame[cfg.target].isna().any():
        raise ConfigError(
            f"training.target {cfg.target!r} has {int(frame[cfg.target].isna().sum())} missing "
            f"labels; drop those rows at the source or add a not-null expectation"
        )
    train, test = train_test_split(
        frame,
        test_size=cfg.test_size,
        random_state=cfg.seed,
        stratify=frame[cfg.target] if cfg.stratify else None,
    )
    features = [c for c in frame.columns if c != cfg.target and c not in cfg.drop]
    return Split(
        train.reset_index(drop=True), test.reset_index(drop=True), features, cfg.target, positive
    )


def train_model(project: Project, frame: pd.DataFrame, snapshot: SnapshotRef) -> TrainedModel:
    """Split, fit with the user's function, and log the run and model to MLflow."""
    cfg = project.config.training
    logs = project.state_dir / "logs"
    fn = load_train_function(project.root, cfg.entrypoint, logs)
    split = split_frame(project, frame)
    params = {**cfg.params, "target": cfg.target, "seed": cfg.seed}
    git = git_state(project.root)

    mlflow_client(project.tracking_uri)
    import mlflow
    from mlflow.models import infer_signature

    t0 = time.perf_counter()  # MLflow's work from here on, not its import

    if mlflow.get_experiment_by_name(project.experiment) is None:
        mlflow.create_experiment(project.experiment, artifact_location=project.artifact_location)
    mlflow.set_experiment(project.experiment)
    with mlflow.start_run(run_name=snapshot.label) as run:
        mlflow.set_tags(
            {
                "shipml.snapshot": snapshot.label,
                "shipml.snapshot_hash": snapshot.content_hash,
                "shipml.git_commit": git["commit"],
                "shipml.git_dirty": str(git["dirty"]).lower(),
                "mlflow.source.git.commit": git["commit"],
            }
        )
        mlflow.log_params(
            {
                **{f"param.{k}": v for k, v in cfg.params.items()},
                "split.test_size": cfg.test_size,
                "split.stratify": cfg.stratify,
                "split.seed": cfg.seed,
                "target": cfg.target,
                "positive_label": split.positive_label,
            }
        )
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            frame,
            source=f"{snapshot.uri}@{snapshot.version}",
            name=snapshot.label,
            digest=snapshot.content_hash.removeprefix("sha256:")[:32],
            targets=cfg.target,
        )
        mlflow.log_input(dataset, context="training")
        t_fit = time.perf_counter()
        with user_code(f"{cfg.entrypoint}(data, params)", project.root, logs):
            model = fn(split.train.copy(), dict(params))
        fit_s = time.perf_counter() - t_fit
        check_estimator(model, cfg.entrypoint)
        example = split.train[split.features].head(5)
        signature = infer_signature(example, model.predict_proba(example))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            code_paths=[str(p) for p in project_modules(project.root)] or None,
            pip_requirements=model_requirements(model),
            skops_trusted_types=own_types(model),
            metadata={
                "shipml": {
                    "model_name": project.model_name,
                    "target": cfg.target,
                    "positive_label": _plain(split.positive_label),
                    "decision_threshold": project.config.evaluation.decision_threshold,
                    "snapshot": snapshot.label,
                }
            },
        )
        mlflow.log_text(installed_distributions(), "environment/requirements.lock")
    total_s = time.perf_counter() - t0
    return TrainedModel(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        model=model,
        split=split,
        git=git,
        timings={"user_fit": fit_s, "mlflow": total_s - fit_s},
    )


def _positive_label(given: Any, labels: list[Any], target: str) -> Any:
    """The configured positive label as the value the column holds.

    YAML gives `"1"` as text and `1` as a number; a label column read from CSV holds numbers
    or text. A value that matches exactly one label as text (`"1"` for 1, `"true"` for True)
    is that label; anything else is explained with the labels' type.
    """
    if given is None:
        return labels[1]
    if given in labels and all(type(given) is not bool or type(x) is bool for x in labels):
        return given
    spellings = {str(given).lower()}
    if isinstance(given, bool):  # YAML 1.1 reads an unquoted yes/no/on/off as a boolean
        spellings |= {"true", "yes", "y", "on"} if given else {"false", "no", "n", "off"}
    matches = [x for x in labels if str(x).lower() in spellings]
    if len(matches) == 1:
        return matches[0]
    kinds = sorted({type(_plain(x)).__name__ for x in labels})
    raise ConfigError(
        f"training.positive_label {given!r} ({type(given).__name__}) is not a label of "
        f"{target!r}: its labels are {labels} ({'/'.join(kinds)}); set positive_label to one "
        f"of them (quote text labels in shipml.yaml: YAML reads yes, no, on, off as booleans)"
    )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so it can be written to YAML."""
    return value.item() if hasattr(value, "item") else value


def own_types(model: Any) -> list[str]:
    """The types in the model that skops does not trust by default, e.g. the project's own
    functions (`features.prepare`): this model was fitted by this run, so they are trusted.

    MLflow saves scikit-learn models with skops (no arbitrary code runs on load); the list is
    stored with the model, so loading it later accepts exactly these types and no others.
    """
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def git_state(root: Path) -> dict[str, Any]:
    """The commit the code is at and whether the work tree differs from it."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "none", "dirty": bool(dirty) if commit else None}


def model_requirements(model: Any) -> list[str]:
    """Pinned requirements for the libraries the fitted model's objects come from.

    Walks the estimator (and a Pipeline's or ColumnTransformer's parts) and pins the
    distributions their modules belong to; much faster than MLflow's inference, which
    reloads the model in a subprocess.
    """
    packages = metadata.packages_distributions()
    tops: set[str] = {"numpy", "pandas", "scikit-learn", "skops"}
    seen: set[int] = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        top = type(obj).__module__.split(".")[0]
        tops.update(packages.get(top, []))
        if hasattr(obj, "get_params"):
            for value in obj.get_params(deep=False).values():
                walk(value)
        if isinstance(obj, list | tuple):
            for item in obj:
                walk(item)

    walk(model)
    pins = []
    for dist in sorted(tops, key=str.lower):
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def installed_distributions() -> str:
    """`name==version` for every installed distribution: the resolved environment."""
    lines = {
        f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]
    }
    return "\n".join(sorted(lines, key=str.lower)) + "\n"
