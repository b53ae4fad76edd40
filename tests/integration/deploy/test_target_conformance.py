"""The `Target` protocol's conformance test: every deploy target must pass it.

The controller relies on exactly these behaviours; the Kubernetes target (driving a Helm
release) will join the parametrization below. The local target runs for real here: a
`shipml serve` process, driven through its admin API.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from shipml.config import Project, load_project
from shipml.deploy.analysis import parse_metrics
from shipml.deploy.local import LocalTarget
from shipml.deploy.target import ModelRef, Target, VariantState
from shipml.errors import DeployError

pytestmark = pytest.mark.slow

TARGETS: dict[str, Callable[[Project], Target]] = {"local": LocalTarget}


def models(project: Project) -> tuple[ModelRef, ModelRef]:
    from shipml.serve.model import resolve

    refs = []
    for version in (1, 2):
        source = resolve(
            f"models:/rollout/{version}",
            tracking_uri=project.tracking_uri,
            cache_dir=project.state_dir / "serve" / "models",
        )
        refs.append(ModelRef(source.name, int(source.version), source.path))
    return refs[0], refs[1]


def predict(url: str) -> tuple[str, str]:
    body = json.dumps({"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [[0, 0, 0]]}})
    request = urllib.request.Request(
        url + "/invocations", body.encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["x-shipml-variant"], response.headers["x-shipml-model-version"]


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_target_conformance(kind: str, registered: Path, tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(registered, root, ignore=shutil.ignore_patterns("deploy", "serve"))
    project = load_project(root, env={})
    target = TARGETS[kind](project)
    assert isinstance(target, Target)
    a, b = models(project)
    assert target.status().up is False
    with pytest.raises(DeployError, match="shipml deploy"):
        target.metrics()  # nothing to ask yet: a clear error, not a traceback
    try:
        target.start(a)
        status = target.status()
        assert status.up and status.ready and status.url
        assert [(v.name, v.version, v.weight, v.shadow) for v in status.variants] == [
            ("stable", 1, 100.0, False)
        ]
        assert predict(status.url) == ("stable", "1")

        target.load("canary", b, shadow=False)  # loaded without traffic
        assert target.status().variant("canary") == VariantState("canary", 2, 0.0, False)
        assert predict(status.url) == ("stable", "1")
        target.set_weights({"stable": 0, "canary": 100})
        assert predict(status.url) == ("canary", "2")
        target.load("shadow", b, shadow=True)
        target.load("shadow", b, shadow=True)  # idempotent
        assert predict(status.url) == ("canary", "2")  # a shadow never answers
        stats = parse_metrics(target.metrics(), "rollout")
        assert stats["canary"].requests.get("2xx", 0) >= 2

        target.remove("shadow")
        target.remove("shadow")  # removing what is gone is not an error
        target.start(b)  # swaps stable in place; only stable remains, with all traffic
        assert [(v.name, v.version, v.weight) for v in target.status().variants] == [
            ("stable", 2, 100.0)
        ]
        assert predict(status.url) == ("stable", "2")
    finally:
        target.stop()
    assert target.status().up is False
    target.stop()  # stopping twice is fine
