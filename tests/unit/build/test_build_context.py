"""The build context: the same bytes for the same inputs, and what the image will read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from shipml._hashing import tree_hash, tree_manifest
from shipml.build.context import ModelRef, assemble
from shipml.build.dockerfile import read_build_args
from shipml.build.wheels import Wheelhouse
from shipml.config import Project, load_project
from shipml.errors import BuildError
from shipml.registry.manifest import Record
from tests._models import record_of

BASE = "localhost/base@sha256:" + "0" * 64
REF = ModelRef(
    name="credit",
    version=3,
    run_id="abc123",
    source="models:/m-1",
    git_commit="0123456789abcdef0123",
    snapshot="credit@0",
    snapshot_hash="sha256:" + "1" * 64,
    recorded_hash=None,
    created=1_700_000_000,
)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    config = {
        "project": "credit",
        "build": {"base": BASE, "port": 9000},
        "serve": {"max_batch_rows": 64},
    }
    (root / "shipml.yaml").write_text(yaml.safe_dump(config))
    return load_project(root, env={})


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "model.skops").write_bytes(b"\x00weights\x01")
    (folder / "code" / "features.py").write_text("def prepare(x):\n    return x\n")
    return folder


@pytest.fixture
def record(model_dir: Path) -> Record:
    return record_of(model_dir, "credit", "3")


@pytest.fixture
def wheels(tmp_path: Path) -> Wheelhouse:
    folder = tmp_path / "wheelhouse"
    (folder / "wheels").mkdir(parents=True)
    (folder / "tools").mkdir()
    (folder / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(b"demo")
    (folder / "tools" / "pip-26.3-py3-none-any.whl").write_bytes(b"pip")
    return Wheelhouse(
        folder,
        ("demo-1.0-py3-none-any.whl",),
        "pip-26.3-py3-none-any.whl",
        "demo==1.0 --hash=sha256:" + "2" * 64 + "\n",
        "0.1.0",
        reused=False,
    )


def test_same_inputs_same_context_hash(
    project: Project, model_dir: Path, wheels: Wheelhouse, record: Record, tmp_path: Path
) -> None:
    a = assemble(project, REF, model_dir, wheels, "3.11", tmp_path / "a", record=record)
    b = assemble(project, REF, model_dir, wheels, "3.11", tmp_path / "b", record=record)
    assert a.hash == b.hash and a.dockerfile_hash == b.dockerfile_hash
    assert (a.path / "Dockerfile").read_bytes() == (b.path / "Dockerfile").read_bytes()
    again = assemble(
        project, REF, model_dir, wheels, "3.11", tmp_path / "a", record=record
    )  # replaced
    assert again.hash == a.hash
    newer = ModelRef(**{**REF.__dict__, "version": 4})
    assert (
        assemble(project, newer, model_dir, wheels, "3.11", tmp_path / "c", record=record).hash
        != a.hash
    )


def test_model_manifest_verifies_with_sha256sum(
    project: Project, model_dir: Path, wheels: Wheelhouse, record: Record, tmp_path: Path
) -> None:
    ctx = assemble(project, REF, model_dir, wheels, "3.11", tmp_path / "ctx", record=record)
    assert (ctx.path / "model.sha256").read_text() == tree_manifest(model_dir)
    assert ctx.model_hash == tree_hash(model_dir) == ctx.build_args["MODEL_HASH"]
    baked = Record.load(ctx.path / "model.record.json")  # what the image's server checks
    assert baked.hash == ctx.model_hash and baked.manifest == record.manifest
    assert baked.source == ""  # no path of the build machine in the image
    check = ["sha256sum", "--check", "--strict", "--quiet", "../model.sha256"]
    assert subprocess.run(check, cwd=ctx.path / "model").returncode == 0
    (ctx.path / "model" / "model.skops").write_bytes(b"\x00weightz\x01")
    failed = subprocess.run(check, cwd=ctx.path / "model", capture_output=True, text=True)
    assert failed.returncode != 0 and "model.skops: FAILED" in failed.stdout


def test_build_args_and_image_settings(
    project: Project, model_dir: Path, wheels: Wheelhouse, record: Record, tmp_path: Path
) -> None:
    ctx = assemble(project, REF, model_dir, wheels, "3.11", tmp_path / "ctx", record=record)
    assert read_build_args(ctx.path) == ctx.build_args
    assert ctx.build_args["GIT_COMMIT"] == REF.git_commit
    assert ctx.build_args["SNAPSHOT_HASH"] == REF.snapshot_hash
    assert (ctx.path / "requirements.txt").read_text() == wheels.requirements
    assert sorted(p.name for p in (ctx.path / "wheels").iterdir()) == list(wheels.wheels)
    image_root = tmp_path / "image"
    image_root.mkdir()
    (image_root / "shipml.yaml").write_bytes((ctx.path / "shipml.yaml").read_bytes())
    inside = load_project(image_root, env={})  # the image's own shipml loads it
    assert inside.config.serve.host == "0.0.0.0" and inside.config.serve.port == 9000
    assert inside.config.serve.max_batch_rows == 64
    assert str(inside.state_dir) == "/var/lib/shipml"


def test_an_ejected_dockerfile_is_used_when_configured(
    project: Project, model_dir: Path, wheels: Wheelhouse, record: Record, tmp_path: Path
) -> None:
    from shipml.build.image import eject

    path = eject(project, project.root / "Dockerfile")
    path.write_text(path.read_text() + "# mine\n")
    own = load_project(project.root, env={"SHIPML_BUILD__DOCKERFILE": "Dockerfile"})
    ctx = assemble(own, REF, model_dir, wheels, "3.11", tmp_path / "ctx", record=record)
    assert (ctx.path / "Dockerfile").read_text().endswith("# mine\n")
    missing = load_project(project.root, env={"SHIPML_BUILD__DOCKERFILE": "nope/Dockerfile"})
    with pytest.raises(BuildError, match=r"build.dockerfile 'nope/Dockerfile' does not exist"):
        assemble(missing, REF, model_dir, wheels, "3.11", tmp_path / "ctx2", record=record)


def test_eject_refuses_to_overwrite(project: Project) -> None:
    from shipml.build.image import eject
    from shipml.errors import UsageError

    eject(project, project.root / "Dockerfile")
    with pytest.raises(UsageError, match="--force"):
        eject(project, project.root / "Dockerfile")
    eject(project, project.root / "Dockerfile", force=True)
