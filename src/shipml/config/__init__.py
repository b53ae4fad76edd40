"""The one model of shipml.yaml, and the project it describes.

The sections (every field, default and meaning) are in `sections.py` and re-exported here, so
`from shipml.config import ServeConfig` stays the one way to name them.

`load_project(path)` reads shipml.yaml once, applies SHIPML_* overrides, validates everything
and returns a frozen `Project`: the config plus the directory it lives in, with every derived
location (state store URL, MLflow URI, snapshot root) computed in one place. Nothing here reads
a file at import time or keeps global state; callers pass the Project explicitly.

Environment overrides use a double underscore between levels and YAML for the value:
`SHIPML_TRAINING__SEED=7`, `SHIPML_STATE__URL=postgresql+psycopg://...`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shipml.config.sections import (  # noqa: F401  (re-exported: the config's public names)
    AnalysisConfig,
    BuildConfig,
    ChampionGate,
    Config,
    DataConfig,
    DeployConfig,
    EvaluationConfig,
    FairnessGate,
    LatencyGate,
    Metric,
    RegistryConfig,
    RobustnessGate,
    ServeConfig,
    StateConfig,
    SuggestConfig,
    TestsConfig,
    Threshold,
    TrainingConfig,
    ValidationConfig,
)
from shipml.errors import ConfigError

__all__ = ["CONFIG_FILE", "Config", "Project", "load_project"]

CONFIG_FILE = "shipml.yaml"
ENV_PREFIX = "SHIPML_"


@dataclass(frozen=True)
class Project:
    """A loaded shipml.yaml and the directory it describes, with every derived location."""

    root: Path
    config: Config
    # MLFLOW_TRACKING_URI as it was when the project was loaded: the team's server, honoured
    # when training.tracking_uri is unset (MLflow's own convention, so a CI job pointed at a
    # team server never registers into a local file that is thrown away)
    mlflow_tracking_env: str | None = None

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @property
    def name(self) -> str:
        return self.config.project

    @property
    def state_dir(self) -> Path:
        return self.path(self.config.state.dir)

    @property
    def state_url(self) -> str:
        return self.config.state.url or f"sqlite:///{self.state_dir / 'state.db'}"

    @property
    def tracking_uri(self) -> str:
        """training.tracking_uri, else $MLFLOW_TRACKING_URI, else a SQLite file in state."""
        return (
            self.config.training.tracking_uri
            or self.mlflow_tracking_env
            or f"sqlite:///{self.state_dir / 'mlflow.db'}"
        )

    @property
    def tracking_uri_source(self) -> str:
        """Where `tracking_uri` came from, for `config show` and the run summary."""
        if self.config.training.tracking_uri:
            return "training.tracking_uri"
        return "MLFLOW_TRACKING_URI" if self.mlflow_tracking_env else "default (local SQLite)"

    @property
    def artifact_location(self) -> str | None:
        """Where MLflow puts run artifacts of a new experiment: under the state directory for
        a local tracking store (MLflow's default is ./mlruns of whatever the working directory
        happens to be); the tracking server's own default otherwise."""
        if self.tracking_uri.startswith(("sqlite:", "file:")) or "://" not in self.tracking_uri:
            return (self.state_dir / "artifacts").as_uri()
        return None

    @property
    def experiment(self) -> str:
        return self.config.training.experiment or self.name

    @property
    def model_name(self) -> str:
        return self.config.registry.model_name or self.name

    @property
    def dataset(self) -> str:
        return self.config.data.dataset or self.name

    @property
    def snapshot_root(self) -> str:
        store = self.config.data.store
        if store and "://" in store:
            return store.rstrip("/")
        return str(self.path(store) if store else self.state_dir / "data")

    @property
    def validation_docs_dir(self) -> Path:
        d = self.config.validation.docs_dir
        return self.path(d) if d else self.state_dir / "reports" / "validation"

    @property
    def inference_log_dir(self) -> Path:
        return self.state_dir / "inference"

    @property
    def build_dir(self) -> Path:
        """Build contexts, records, SBOMs and the wheel cache of `shipml build`."""
        return self.state_dir / "build"

    @property
    def deploy_dir(self) -> Path:
        """The local target's files: server pid/port record, admin token, server log."""
        return self.state_dir / "deploy"

    @property
    def evaluation_reports_dir(self) -> Path:
        d = self.config.evaluation.reports_dir
        return self.path(d) if d else self.state_dir / "reports" / "evaluation"


def load_project(path: str | Path = ".", env: Mapping[str, str] | None = None) -> Project:
    """Read shipml.yaml (a file, or the folder holding it), apply SHIPML_* overrides, validate."""
    path = Path(path)
    file = path / CONFIG_FILE if path.is_dir() else path
    if not file.exists():
        raise ConfigError(
            f"no {CONFIG_FILE} at {file.parent.resolve()}; run from the project folder, "
            f"pass --project PATH, or create one with `shipml init`"
        )
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file} must be a mapping of sections, got {type(raw).__name__}")
    env = os.environ if env is None else env
    return Project(
        root=file.parent.resolve(),
        config=parse_config(_apply_env(raw, env), source=str(file)),
        mlflow_tracking_env=env.get("MLFLOW_TRACKING_URI") or None,
    )


def parse_config(raw: dict[str, Any], source: str = CONFIG_FILE) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in raw.items()}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(f"{ENV_PREFIX}_"):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if keys[0] not in Config.model_fields:
            continue  # other SHIPML_* variables (e.g. SHIPML_ACTOR) are not config
        node = merged
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[keys[-1]] = yaml.safe_load(value) if value else value
    return merged


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            hint = _nearest(err["loc"])
            lines.append(f"unknown key '{loc}'{hint}")
        elif err["type"] == "missing":
            lines.append(f"'{loc}' is required")
        else:
            lines.append(f"'{loc}' = {err.get('input')!r}: {err['msg']}")
    return f"invalid {source}:\n" + "\n".join(f"  - {line}" for line in lines)


def _nearest(loc: tuple[Any, ...]) -> str:
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None or not isinstance(field.annotation, type):
            return ""
        model = field.annotation
    valid = list(getattr(model, "model_fields", {}))
    match = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
    if match:
        return f"; did you mean '{match[0]}'?"
    return f"; valid keys: {', '.join(valid)}" if valid else ""
