"""Quiet, offline set-up of the heavy libraries, done once before their first import.

Telemetry of Great Expectations and MLflow is switched off here and nothing is downloaded at
run time. Callers invoke `offline()` right before importing MLflow or GX; it only sets
environment defaults, so a user's explicit setting still wins.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

_DEFAULTS = {
    "GX_ANALYTICS_ENABLED": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_CONFIGURE_LOGGING": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", ""),
}


def offline() -> None:
    for key, value in _DEFAULTS.items():
        if value:
            os.environ.setdefault(key, value)
    for name in ("mlflow", "alembic", "great_expectations"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow warns about its own defaults (e.g. pip inference, pydantic) on every run;
    # they are not actionable for a shipml user.
    warnings.filterwarnings("ignore", module=r"mlflow(\..*)?$")


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def mlflow_client(tracking_uri: str) -> Any:
    """An MlflowClient on `tracking_uri`, with the fluent API pointed at it too.

    MLflow's `set_tracking_uri` also writes MLFLOW_TRACKING_URI (and the registry's
    MLFLOW_REGISTRY_URI) into the environment, for child processes. Those variables are the
    user's way of naming the team's server, so they are put back as they were: otherwise the
    next project loaded in this process, and every child it starts, would take this
    project's store for the user's choice.
    """
    offline()
    import mlflow
    from mlflow import MlflowClient

    before = {key: os.environ.get(key) for key in _MLFLOW_ENV}
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def preload(*modules: str) -> None:
    """Import heavy modules now, so a timed block that follows measures work, not imports."""
    import importlib

    for name in modules:
        importlib.import_module(name)
