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


def mlflow_client(tracking_uri: str) -> Any:
    """An MlflowClient on `tracking_uri`, with the fluent API pointed at it too."""
    offline()
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def preload(*modules: str) -> None:
    """Import heavy modules now, so a timed block that follows measures work, not imports."""
    import importlib

    for name in modules:
        importlib.import_module(name)
