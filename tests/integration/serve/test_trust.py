"""What a real `shipml serve` process agrees to run: verified registry versions, a folder only
when told to trust it, pickles only on request, and each version's own feature code.

`twofeat` is a tiny project registered twice: version 1's `features.prepare` passes rows
through, version 2's maps every row to the same point, so version 2 answers one constant and
version 1 answers each row differently. Which code a variant runs shows in its answers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from shipml.config import load_project
from tests._models import hostile_code, hostile_pickle
from tests.integration.serve.conftest import TOKEN, free_port, start_server

pytestmark = pytest.mark.slow

AUTH = {"authorization": f"Bearer {TOKEN}"}
CONFIG = """\
project: twofeat
data:
  source: data/rows.csv
training:
  entrypoint: train:train
  target: label
evaluation:   # these tests are about serving, not about the gates
  thresholds: {}
  latency: {enabled: false}
  robustness: {enabled: false}
  champion: {enabled: false}
serve:
  port: 0
  log_sample_rate: 0
"""
TRAIN = """\
from features import prepare
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer


def train(data, params):
    X, y = data.drop(columns=[params["target"]]), data[params["target"]]
    model = LogisticRegression().fit(X, y)  # the same weights for both versions
    return Pipeline([("features", FunctionTransformer(prepare).fit(X)), ("model", model)])
"""
FEATURES = {
    1: "def prepare(X):\n    return X\n",
    2: "def prepare(X):\n    return X * 0.0 + 1.0  # every row the same point\n",
}


@pytest.fixture(scope="session")
def twofeat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shipml.pipeline import run_stages

    root = tmp_path_factory.mktemp("twofeat") / "twofeat"
    (root / "data").mkdir(parents=True)
    (root / "shipml.yaml").write_text(CONFIG)
    (root / "train.py").write_text(TRAIN)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    label = (x[:, 0] - x[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    lines = ["x1,x2,x3,label"] + [
        f"{a:.6f},{b:.6f},{c:.6f},{y}" for (a, b, c), y in zip(x, label, strict=True)
    ]
    (root / "data" / "rows.csv").write_text("\n".join(lines) + "\n")
    for version, source in FEATURES.items():
        (root / "features.py").write_text(source)
        for module in ("features", "train"):  # this process trains both versions
            sys.modules.pop(module, None)
        stages = ["ingest", "train", "evaluate", "register"]
        result = run_stages(load_project(root, env={}), stages)
        assert result.ok, result.to_dict()
        assert result.steps[-1].outputs["version"] == version
    for module in ("features", "train"):
        sys.modules.pop(module, None)
    return root


ROWS = [[-2.0, 1.0, 0.5], [2.0, -1.0, 0.0]]


def answers(url: str) -> tuple[list[float], set[str]]:
    body = {"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": ROWS}}
    out, variants = [], set()
    for row in ROWS:
        body["dataframe_split"]["data"] = [row]
        r = httpx.post(f"{url}/invocations", json=body, timeout=30)
        assert r.status_code == 200, r.text
        out.append(float(r.json()["predictions"][0]))
        variants.add(r.headers["x-shipml-variant"])
    return out, variants


def admin(url: str, method: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", json=body, headers=AUTH, timeout=120)


@pytest.fixture
def copy(twofeat: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "twofeat"
    shutil.copytree(twofeat, root, ignore=shutil.ignore_patterns("serve", "deploy"))
    yield root


def test_two_versions_with_different_feature_code_each_serve_their_own(copy: Path) -> None:
    server = start_server("models:/twofeat/1", copy)
    try:
        alone, _ = answers(server.url)
        assert alone[0] != pytest.approx(alone[1])  # version 1: each row its own answer
        r = admin(
            server.url, "POST", "/admin/variants", {"name": "canary", "model": "models:/twofeat/2"}
        )
        assert r.status_code == 200, r.text
        admin(server.url, "PUT", "/admin/weights", {"weights": {"canary": 100}})
        canary, by = answers(server.url)
        assert by == {"canary"}
        assert canary[0] == pytest.approx(canary[1])  # version 2's features: one point
        assert canary[0] != pytest.approx(alone[0]) and canary[0] != pytest.approx(alone[1])
        admin(server.url, "PUT", "/admin/weights", {"weights": {"stable": 100}})
        stable, by = answers(server.url)
        assert by == {"stable"} and stable == pytest.approx(alone)  # still its own code
    finally:
        server.stop()


def test_the_other_order_too_in_one_process(copy: Path) -> None:
    """Version 2 loaded first, then version 1, in this process: each answers with its own."""
    from shipml.serve.inputs import Batch
    from shipml.serve.model import load, resolve

    project = load_project(copy, env={})
    cache = project.state_dir / "serve" / "models"
    before = sys.modules.get("features")
    two = load(resolve("models:/twofeat/2", tracking_uri=project.tracking_uri, cache_dir=cache))
    one = load(resolve("models:/twofeat/1", tracking_uri=project.tracking_uri, cache_dir=cache))
    batch = Batch({n: np.array([r[i] for r in ROWS]) for i, n in enumerate(["x1", "x2", "x3"])}, 2)
    p2, p1 = two.predict(batch), one.predict(batch)
    assert p2[0] == pytest.approx(p2[1]) and p1[0] != pytest.approx(p1[1])
    assert sys.modules.get("features") is before


def serve_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipml", "serve", *args, "--port", str(free_port())],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


@pytest.mark.parametrize("kind", ["pickle", "code"])
def test_shipml_serve_runs_nothing_of_a_hostile_folder(
    kind: str, credit_project: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    folder = (
        hostile_pickle(tmp_path / "m", marker)
        if kind == "pickle"
        else hostile_code(tmp_path / "m", marker, tmp_path / "scratch")
    )
    out = serve_cli(str(folder), "--project", str(credit_project))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "not a registry reference" in out.stderr and "--trust-folder" in out.stderr
    assert not marker.exists()
    if kind == "pickle":  # trusting the folder is not opting in to pickles
        out = serve_cli(str(folder), "--trust-folder", "--project", str(credit_project))
        assert out.returncode == 2, out.stdout + out.stderr
        assert "serve.allow_pickle: true" in out.stderr and "trusting" in out.stderr
        assert not marker.exists()


def test_the_admin_api_loads_registry_references_only(credit_project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    hostile = hostile_code(tmp_path / "code", marker, tmp_path / "scratch")
    pickled = hostile_pickle(tmp_path / "pickle", marker)
    server = start_server("models:/credit/1", credit_project)
    try:
        refusals = []
        for model in (str(hostile), str(pickled), str(tmp_path / "no-such-folder"), "/etc"):
            r = admin(server.url, "POST", "/admin/variants", {"name": "canary", "model": model})
            assert r.status_code == 422
            refusals.append(r.json()["error"]["message"].replace(model, "<model>"))
        assert len(set(refusals)) == 1, refusals  # a path's existence shows in no answer
        assert "registered versions only" in refusals[0]
        r = admin(server.url, "POST", "/admin/variants", {"name": "x", "model": "models:/other/1"})
        assert r.status_code == 422 and "not a version of 'credit'" in r.text
        r = admin(
            server.url, "POST", "/admin/variants", {"name": "canary", "model": "models:/credit/1"}
        )
        assert r.status_code == 200, r.text
        assert {v["version"] for v in r.json()["variants"]} == {"1"}
    finally:
        server.stop()
    assert not marker.exists()


def test_an_image_style_folder_is_served_from_its_record(
    credit_project: Path, tmp_path: Path
) -> None:
    """The image's start path: a folder and the record the build baked in, no registry."""
    from shipml.registry.manifest import read_record

    project = load_project(credit_project, env={})
    record = read_record(project.tracking_uri, "credit", "1")
    [folder] = [
        p.parent for p in (credit_project / ".shipml/serve/models/credit").glob("1/MLmodel")
    ] or [None]
    if folder is None:  # not fetched yet by an earlier test
        from shipml.serve.model import resolve

        folder = resolve(
            "models:/credit/1",
            tracking_uri=project.tracking_uri,
            cache_dir=project.state_dir / "serve" / "models",
        ).path
    image = tmp_path / "opt"
    shutil.copytree(folder, image / "model")
    record.save(image / "model.record.json")
    (image / "shipml.yaml").write_text("project: credit\nserve: {log_sample_rate: 0}\n")
    server = start_server(str(image / "model"), image, "--record", str(image / "model.record.json"))
    try:
        r = httpx.get(f"{server.url}/v2/models/credit", timeout=10)
        assert r.status_code == 200 and r.json()["versions"] == ["1"], r.text
    finally:
        server.stop()
    (image / "model" / "MLmodel").write_text((image / "model" / "MLmodel").read_text() + "\n")
    out = serve_cli(
        str(image / "model"), "--record", str(image / "model.record.json"), "--project", str(image)
    )
    assert out.returncode == 2 and "changed: MLmodel" in out.stderr, out.stderr
