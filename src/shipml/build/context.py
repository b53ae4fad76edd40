"""Everything a build reads, gathered into one folder: the build context.

`assemble()` writes the context of one registered model version from its parts (the model
folder, already verified; the wheelhouse; the project's build settings), the same bytes for
the same inputs, and returns its hash. Which files it holds is described in dockerfile.py.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shipml import __version__
from shipml._hashing import sha256_file, tree_manifest
from shipml.build.dockerfile import (
    BUILD_ARGS,
    STATE,
    DockerfileSpec,
    context_hash,
    render,
    write_build_args,
)
from shipml.build.wheels import Wheelhouse
from shipml.config import Project
from shipml.errors import BuildError
from shipml.registry.manifest import Record

__all__ = ["BuildContext", "ModelRef", "assemble", "dockerfile_spec", "image_config"]


@dataclass(frozen=True)
class ModelRef:
    """The registered version being built, with what its image labels say about it."""

    name: str
    version: int
    run_id: str
    source: str  # the logged model's URI: the files that were hashed at registration
    git_commit: str
    snapshot: str
    snapshot_hash: str
    recorded_hash: str | None  # tag shipml.model_hash, set at registration
    created: int  # registration time, seconds since the epoch: the image's timestamp


@dataclass(frozen=True)
class BuildContext:
    path: Path
    dockerfile: Path
    build_args: dict[str, str]
    hash: str
    dockerfile_hash: str
    model_hash: str


def dockerfile_spec(project: Project) -> DockerfileSpec:
    cfg = project.config.build
    return DockerfileSpec(base=cfg.base, uid=cfg.uid, port=cfg.port, shipml_version=__version__)


def image_config(project: Project) -> str:
    """shipml.yaml for the image: the project's serve settings, listening on all addresses
    at build.port, keeping its state (the inference log) under /var/lib/shipml."""
    cfg = project.config
    serve: dict[str, Any] = cfg.serve.model_dump(mode="json")
    serve.update(host="0.0.0.0", port=cfg.build.port)
    doc = {
        "project": cfg.project,
        "state": {"dir": STATE},
        "registry": {"model_name": project.model_name},
        "serve": serve,
    }
    header = (
        "# The serving settings of this image, written by `shipml build` from the project's\n"
        "# shipml.yaml. Override a value at run time with SHIPML_SERVE__<KEY>.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=True)


def assemble(
    project: Project,
    ref: ModelRef,
    model_dir: Path,
    wheels: Wheelhouse,
    python_version: str,
    dest: Path,
    *,
    record: Record,
) -> BuildContext:
    """Write the build context of `ref` into `dest` (replacing what was there).

    `model_dir` was verified against `record`; the record goes into the image with it
    (model.record.json, without the build machine's artifact URI) so that the server checks
    the files again, and takes the skops trusted types from it, without a registry."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    manifest = tree_manifest(model_dir)
    shutil.copytree(model_dir, dest / "model")
    (dest / "model.sha256").write_text(manifest)
    dataclasses.replace(record, source="").save(dest / "model.record.json")
    model_hash = sha256_file(dest / "model.sha256")
    for folder, names in (("wheels", wheels.wheels), ("tools", (wheels.pip,))):
        (dest / folder).mkdir()
        for name in names:
            _link_or_copy(wheels.folder / folder / name, dest / folder / name)
    (dest / "requirements.txt").write_text(wheels.requirements)
    (dest / "shipml.yaml").write_text(image_config(project))
    dockerfile = dest / "Dockerfile"
    own = project.config.build.dockerfile
    if own:
        source = project.path(own)
        if not source.is_file():
            raise BuildError(
                f"build.dockerfile {own!r} does not exist ({source}); write one with "
                f"`shipml build --eject {own}` or remove the setting to use shipml's"
            )
        shutil.copyfile(source, dockerfile)
    else:
        dockerfile.write_text(render(dockerfile_spec(project)))
    args = {
        "MODEL_NAME": ref.name,
        "MODEL_VERSION": str(ref.version),
        "MODEL_HASH": model_hash,
        "PYTHON_VERSION": python_version,
        "GIT_COMMIT": ref.git_commit,
        "SNAPSHOT": ref.snapshot,
        "SNAPSHOT_HASH": ref.snapshot_hash,
        "MLFLOW_RUN_ID": ref.run_id,
    }
    assert set(args) == set(BUILD_ARGS)
    write_build_args(dest, args)
    for path in dest.rglob("*"):  # the same modes whatever the umask: content alone counts
        path.chmod(0o755 if path.is_dir() else 0o644)
    return BuildContext(
        path=dest,
        dockerfile=dockerfile,
        build_args=args,
        hash=context_hash(dest),
        dockerfile_hash=sha256_file(dockerfile),
        model_hash=model_hash,
    )


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link to the cached wheel (no second copy on disk), or a copy across devices."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
