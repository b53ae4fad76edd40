"""`shipml build` for real: the credit example's image built with buildah, started, queried.

One build runs through the CLI (the way CI runs it); the tests read its record, the image,
its SBOM, the lineage, and start the image again to compare many predictions with the model
in this process. A second build from the same inputs (with the wheel cache emptied, so the
shipml wheel is rebuilt and every wheel downloaded again) must give the same Dockerfile and
context hash. The failure paths: a corrupted model artifact, a corrupted context (caught
inside the image), a server that never becomes ready.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from shipml._hashing import sha256_file
from shipml.build.builders import BuildahBuilder
from shipml.build.smoke import TOLERANCE, expected_predictions, smoke_test
from shipml.config import load_project
from shipml.errors import GateFailed
from tests._services.buildah import remove_images

pytestmark = pytest.mark.slow


@dataclass
class Built:
    project: Path
    result: dict[str, Any]
    seconds: float
    dockerfile: bytes

    @property
    def step(self) -> dict[str, Any]:
        [step] = self.result["steps"]
        return step

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.step["outputs"])

    @property
    def record(self) -> dict[str, Any]:
        return dict(json.loads((self.project / ".shipml/build/credit-1/record.json").read_text()))


def files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p) for p in folder.rglob("*") if p.is_file()
    }


def shipml(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipml", *args, "--project", str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        timeout=1500,
    )


@pytest.fixture(scope="module")
def built(credit: Path, build_env: dict[str, str]) -> Any:
    t0 = time.perf_counter()
    out = shipml(credit, build_env, "build", "--json")
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    context = credit / ".shipml/build/credit-1/context"
    built = Built(credit, json.loads(out.stdout), seconds, (context / "Dockerfile").read_bytes())
    print(f"\nfirst build: {seconds:.1f} s in all, {built.outputs['build_s']:.1f} s in buildah, "
          f"image {built.outputs['size'] / 1e6:.1f} MB")  # fmt: skip
    yield built
    remove_images(*built.outputs["tags"])


def test_the_image_passed_infra_validation(built: Built) -> None:
    out = built.outputs
    assert built.result["ok"] is True
    assert out["smoke"]["rows"] == 5 and out["smoke"]["max_abs_diff"] <= TOLERANCE
    assert out["image_id"].startswith("sha256:") and out["digest"].startswith("sha256:")
    assert out["size"] > 100e6
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=built.project, capture_output=True, text=True
    ).stdout.strip()
    assert out["tags"] == ["localhost/credit:1", f"localhost/credit:1-{commit[:12]}"]


def test_the_started_image_predicts_what_the_model_predicts_in_process(
    built: Built, build_env: dict[str, str], tmp_path: Path
) -> None:
    from shipml.serve.model import Source, load

    project = load_project(built.project, env=build_env)
    model = load(Source.trusted_folder(built.project / ".shipml/build/credit-1/model"))
    frame = pd.read_csv(built.project / "data" / "lending_club.csv.gz").head(200)
    frame = frame.drop(columns=["Class", "loan_id"])
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})
    expected = expected_predictions(model, body.encode(), project.config.serve)
    result = smoke_test(
        BuildahBuilder(),
        built.outputs["image"],
        body=body.encode(),
        expected=expected,
        timeout=180,
        log=tmp_path / "container.log",
    )
    assert result.rows == 200 and result.max_abs_diff <= TOLERANCE
    log = (tmp_path / "container.log").read_text()
    assert "serving credit version 1 on http://0.0.0.0:" in log  # the registry's version
    assert result.predictions == pytest.approx(expected, abs=TOLERANCE)
    assert min(result.predictions) > 0 and max(result.predictions) < 1


def test_the_image_is_labelled_runs_as_non_root_and_has_a_healthcheck(built: Built) -> None:
    data = json.loads(
        subprocess.run(
            ["buildah", "inspect", "--type", "image", built.outputs["image"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    config = data["Docker"]["config"]
    labels = config["Labels"]
    args = built.record["inputs"]["build_args"]
    assert labels["org.opencontainers.image.revision"] == args["GIT_COMMIT"] != "none"
    assert labels["org.opencontainers.image.version"] == "1"
    assert labels["io.shipml.model.name"] == "credit"
    assert labels["io.shipml.model.hash"] == built.record["inputs"]["model_hash"]
    assert labels["io.shipml.snapshot.hash"] == args["SNAPSHOT_HASH"]
    assert args["SNAPSHOT_HASH"].startswith("sha256:")
    assert config["User"] == "10001:10001"
    assert "/readyz" in config["Healthcheck"]["Test"][-1]
    assert config["Entrypoint"][:2] == ["/bin/sh", "-c"]
    assert config["Entrypoint"][2].startswith("exec /opt/shipml/venv/bin/shipml serve ")
    assert "SHIPML_MODEL_VERSION=1" in config["Env"]
    uid = BuildahBuilder().run(built.outputs["image"], ["/usr/bin/id", "-u"])
    assert uid.strip() == "10001"


def test_the_sbom_is_valid_cyclonedx_and_the_image_has_no_training_stack(built: Built) -> None:
    text = Path(built.outputs["sbom"]).read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    names = {c["name"].lower().replace("_", "-") for c in json.loads(text)["components"]}
    assert {"shipml", "scikit-learn", "skops", "uvicorn", "pandas"} <= names
    assert not names & {"mlflow", "great-expectations", "deltalake", "fairlearn", "matplotlib"}
    lock = (built.project / ".shipml/build/credit-1/context/requirements.txt").read_text()
    sklearn = next(c for c in json.loads(text)["components"] if c["name"] == "scikit-learn")
    assert (
        f"scikit-learn=={sklearn['version']} --hash=sha256:{sklearn['hashes'][0]['content']}"
        in (lock.replace("scikit_learn", "scikit-learn"))
    )


def test_lineage_ends_at_the_image_and_the_build_is_audited(
    built: Built, build_env: dict[str, str]
) -> None:
    out = shipml(built.project, build_env, "lineage", "credit:1", "--json")
    chain = json.loads(out.stdout)
    assert [link["stage"] for link in chain][-2:] == ["model", "image"]
    assert chain[-1]["hash"] == built.outputs["digest"]
    assert chain[-1]["details"]["context_hash"] == built.record["inputs"]["context_hash"]
    from shipml.state.store import StateStore

    store = StateStore(load_project(built.project, env={}).state_url)
    [event] = store.events(action="image.built")
    store.close()
    assert event.subject == "credit:1" and event.details["image_id"] == built.outputs["image_id"]


def test_a_second_build_of_the_same_inputs_has_the_same_dockerfile_and_context(
    built: Built, build_env: dict[str, str]
) -> None:
    first = built.record
    context = built.project / ".shipml/build/credit-1/context"
    before = files(context)
    shutil.rmtree(built.project / ".shipml/build/wheels")  # rebuild shipml, download again
    t0 = time.perf_counter()
    out = shipml(built.project, build_env, "build", "--json")
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    second = built.record  # rewritten by the second build
    assert (
        json.loads(out.stdout)["steps"][0]["outputs"]["image_id"] == second["outputs"]["image_id"]
    )
    assert (context / "Dockerfile").read_bytes() == built.dockerfile
    # a difference names its file; only the shipml wheel differs if shipml's own source
    # was edited while this test ran (it is built from the working tree)
    assert files(context) == before
    assert second["inputs"]["dockerfile_hash"] == first["inputs"]["dockerfile_hash"]
    assert second["inputs"]["context_hash"] == first["inputs"]["context_hash"]
    assert second["outputs"]["image_id"] == first["outputs"]["image_id"]  # every layer cached
    print(f"\nsecond build (cached layers): {seconds:.1f} s in all, "
          f"{second['outputs']['build_s']:.1f} s in buildah")  # fmt: skip


def test_a_corrupted_model_artifact_stops_the_build(
    built: Built, build_env: dict[str, str]
) -> None:
    [skops] = (built.project / ".shipml/artifacts").glob("models/*/artifacts/model.skops")
    original = skops.read_bytes()
    try:
        skops.write_bytes(
            original[: len(original) // 2] + b"corrupted" + original[len(original) // 2 :]
        )
        out = shipml(built.project, build_env, "build", "--json")
        assert out.returncode == 2, out.stdout + out.stderr
        error = json.loads(out.stdout)["error"]
        assert "model credit:1" in error and "does not match what was registered" in error
        assert "model.skops" in error
    finally:
        skops.write_bytes(original)


def test_a_corrupted_context_is_caught_inside_the_image(built: Built, tmp_path: Path) -> None:
    context = tmp_path / "context"
    shutil.copytree(built.project / ".shipml/build/credit-1/context", context)
    target = context / "model" / "model.skops"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    args = json.loads((built.project / ".shipml/build/credit-1/record.json").read_text())
    argv = ["buildah", "build", "--isolation", "chroot", "--no-cache", "--force-rm"]
    argv += ["--pull=false", "--target", "model"]
    for key, value in args["inputs"]["build_args"].items():
        argv += ["--build-arg", f"{key}={value}"]
    out = subprocess.run([*argv, str(context)], capture_output=True, text=True)
    assert out.returncode != 0
    assert "model.skops: FAILED" in out.stdout + out.stderr


def test_a_server_that_never_becomes_ready_fails_with_its_log_tail(
    base: str, tmp_path: Path
) -> None:
    entry = [
        "/bin/sh",
        "-c",
        "for i in 1 2 3 4 5; do echo loading part $i; done; "
        "echo waiting for a database that never answers >&2; exec sleep 600",
    ]
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nENTRYPOINT {json.dumps(entry)}\n")
    tag = f"localhost/shipml-never-ready:{tmp_path.name[-8:]}"
    builder = BuildahBuilder()
    try:
        builder.build(
            tmp_path,
            dockerfile=tmp_path / "Dockerfile",
            tags=[tag],
            build_args={},
            timestamp=0,
            log=tmp_path / "build.log",
        )
        t0 = time.perf_counter()
        with pytest.raises(GateFailed) as err:
            smoke_test(builder, tag, body=b"{}", expected=[0.5], timeout=5, log=tmp_path / "c.log")
        assert time.perf_counter() - t0 < 60
    finally:
        remove_images(tag)
    reason, log = err.value.reasons
    assert err.value.stage == "infra validation"
    assert "never became ready" in reason and "within 5 s" in reason
    assert "loading part 5" in log and "waiting for a database that never answers" in log


def test_shipml_build_without_a_builder_says_so(credit: Path) -> None:
    out = shipml(credit, {"SHIPML_BUILD__BUILDER": "none"}, "build")
    assert out.returncode == 2
    assert "no image builder can run here (build.builder is none)" in out.stderr
