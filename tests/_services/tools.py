"""Command-line tools the tests use: skipped when missing, failed when CI requires them."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "SHIPML_REQUIRE_SERVICES"


def require_tool(name: str, install: str) -> str:
    """The path of `name`; a skip when it is missing, or a failure when CI requires it."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed; install it with `{install}`"
    if os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is an error, not a skip)", False)
    pytest.skip(reason)
