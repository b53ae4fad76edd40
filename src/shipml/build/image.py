"""The whole build of one registered model version: prepare the context, then build it.

`prepare()` resolves everything a build reads (the model version and its verified files, the
training run's lock, the wheels, the Dockerfile) into a hashed context; `execute()` builds it,
reads the SBOM out of the image, runs infra validation, pushes when a registry is set, and
writes the build record. The build stage records `prepare`'s inputs before `execute` runs.

    <state>/build/wheels/                 the wheel cache (wheels.py)
    <state>/build/<model>-<version>/
        context/       the newest build context of this version
        model/         the model as downloaded and verified (loaded in process for validation;
                       no bytecode is written into it, it would fail the next verification)
        record.json    the newest build record: image, digests, hashes, size, timings
        sbom.cdx.json  the image's CycloneDX SBOM
        build.log, container.log
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipml.build.builders import Builder, detect
from shipml.build.context import BuildContext, ModelRef, assemble, dockerfile_spec
from shipml.build.dockerfile import APP, render
from shipml.config import Project
from shipml.errors import BuildError, ShipmlError, UsageError
from shipml.registry.manifest import Record
from shipml.state.store import StateStore

__all__ = ["BuildPlan", "BuildResult", "eject", "execute", "find_builder", "prepare"]

SBOM_PATH = f"{APP}/sbom.cdx.json"
PYTHON = f"{APP}/venv/bin/python"


@dataclass
class BuildPlan:
    project: Project
    builder: Builder
    ref: ModelRef
    context: BuildContext
    model: Any  # the ServedModel, loaded in this process
    example: bytes  # the model's input example (dataframe_split JSON)
    tags: list[str]
    folder: Path
    wheels_reused: bool
    timings: dict[str, float] = field(default_factory=dict)

    def inputs(self) -> dict[str, Any]:
        cfg = self.project.config.build
        return {
            "builder": self.builder.name,
            "model": self.ref.name,
            "version": self.ref.version,
            "model_hash": self.context.model_hash,
            "model_hash_verified": True,  # fetch_model refuses anything else
            "base": cfg.base,
            "dockerfile": cfg.dockerfile or "rendered",
            "dockerfile_hash": self.context.dockerfile_hash,
            "context_hash": self.context.hash,
            "build_args": self.context.build_args,
        }


@dataclass
class BuildResult:
    image: str
    tags: list[str]
    image_id: str
    digest: str | None
    size: int
    build_s: float
    sbom: str
    sbom_components: int
    smoke: dict[str, Any] | None
    pushed: dict[str, str]
    timings: dict[str, float]

    @property
    def outputs(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("timings")
        return out

    def summary(self) -> str:
        smoke = (
            f"infra validation passed (ready in {self.smoke['ready_s']:.1f} s, "
            f"{self.smoke['rows']} predictions equal)"
            if self.smoke
            else "infra validation off (build.smoke_test: false)"
        )
        pushed = f"; pushed {', '.join(self.pushed)}" if self.pushed else ""
        return (
            f"{self.image} {self.image_id[:19]} ({self.size / 1e6:.0f} MB, built in "
            f"{self.build_s:.0f} s); {smoke}{pushed}"
        )


def find_builder(project: Project) -> tuple[Builder | None, str]:
    """The configured builder if it works here; (None, why not) otherwise.

    `auto` finding none is not an error (`shipml run` skips the build); a builder named in
    build.builder that does not work is.
    """
    choice, base = project.config.build.builder, project.config.build.base
    builder, why = detect(choice)
    if builder is None and choice not in ("auto", "none"):
        raise BuildError(
            f"build.builder is {choice!r} but it cannot build here ({why}); install it, "
            f"or set build.builder to auto"
        )
    if builder is None and choice == "auto":
        why = f"no image builder found ({why}); install docker, podman or buildah"
    if builder is not None and choice == "auto" and not _has_image(builder, base):
        # found, but it would have to pull the base, which may be impossible (offline, a
        # closed network): opportunistic `auto` skips; a named builder pulls or fails
        return None, (
            f"{builder.name} has no local copy of the base image {base}; pull it "
            f"(`{builder.name} pull {base}`), or set build.base to an image you have, or "
            f"name the builder (build.builder: {builder.name}) to let the build pull it"
        )
    return builder, why


def _has_image(builder: Builder, ref: str) -> bool:
    try:
        builder.inspect(ref)
    except BuildError:
        return False
    return True


def prepare(project: Project, builder: Builder, version: int | None = None) -> BuildPlan:
    from shipml.build import model as registered
    from shipml.build.wheels import resolve_wheels

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ref = registered.model_ref(project, version)
    folder = project.build_dir / f"{ref.name}-{ref.version}"
    record = registered.fetch_model(project, ref, folder / "model")
    lock = registered.fetch_lock(project, ref)
    python = registered.python_version(folder / "model")
    timings["mlflow"] = time.perf_counter() - t0
    served = _load(project, folder / "model", record)
    example = folder / "model" / "serving_input_example.json"
    if not example.is_file():
        raise BuildError(
            f"model {ref.name}:{ref.version} has no input example ({example.name}); infra "
            f"validation sends it to the image. Models trained by shipml have one"
        )
    cfg = project.config.build
    t1 = time.perf_counter()
    wheels = resolve_wheels(
        lock,
        project.build_dir / "wheels",
        python=python,
        glibc=cfg.base_glibc,
        arch=cfg.arch,
        wheelhouse=project.path(cfg.wheelhouse) if cfg.wheelhouse else None,
    )
    timings["pip"] = time.perf_counter() - t1
    context = assemble(
        project, ref, folder / "model", wheels, python, folder / "context", record=record
    )
    return BuildPlan(
        project=project,
        builder=builder,
        ref=ref,
        context=context,
        model=served,
        example=example.read_bytes(),
        tags=image_tags(project, ref),
        folder=folder,
        wheels_reused=wheels.reused,
        timings=timings,
    )


def image_tags(project: Project, ref: ModelRef) -> list[str]:
    """REGISTRY/NAME:VERSION and REGISTRY/NAME:VERSION-COMMIT (localhost/ when not pushed)."""
    cfg = project.config.build
    repo = f"{(cfg.registry or 'localhost').rstrip('/')}/{cfg.repository or ref.name}"
    tags = [f"{repo}:{ref.version}"]
    if ref.git_commit and ref.git_commit != "none":
        tags.append(f"{repo}:{ref.version}-{ref.git_commit[:12]}")
    return tags


def execute(plan: BuildPlan, store: StateStore) -> BuildResult:
    from shipml.build.smoke import expected_predictions, smoke_test

    project, builder, image = plan.project, plan.builder, plan.tags[0]
    cfg = project.config.build
    t0 = time.perf_counter()
    image_id = builder.build(
        plan.context.path,
        dockerfile=plan.context.dockerfile,
        tags=plan.tags,
        build_args=plan.context.build_args,
        timestamp=plan.ref.created,
        log=_fresh(plan.folder / "build.log"),
    )
    build_s = time.perf_counter() - t0
    info = builder.inspect(image)
    sbom_text = _read_sbom(builder, image)
    sbom_file = plan.folder / "sbom.cdx.json"
    sbom_file.write_text(sbom_text)
    smoke = None
    t1 = time.perf_counter()
    if cfg.smoke_test:
        expected = expected_predictions(plan.model, plan.example, project.config.serve)
        result = smoke_test(
            builder,
            image,
            body=plan.example,
            expected=expected,
            timeout=cfg.smoke_timeout_s,
            log=plan.folder / "container.log",
        )
        smoke = asdict(result)
    smoke_s = time.perf_counter() - t1
    pushed = {tag: builder.push(image, tag) for tag in plan.tags} if cfg.registry else {}
    result_ = BuildResult(
        image=image,
        tags=plan.tags,
        image_id=info.id or image_id,
        digest=next(iter(pushed.values()), None) or info.digest,
        size=info.size,
        build_s=round(build_s, 3),
        sbom=str(sbom_file),
        sbom_components=len(json.loads(sbom_text).get("components", [])),
        smoke=smoke,
        pushed=pushed,
        timings={"builder": build_s, "smoke": smoke_s},
    )
    record = {
        "inputs": plan.inputs(),
        "outputs": result_.outputs,
        "wheels_reused": plan.wheels_reused,
    }
    (plan.folder / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    store.audit(
        "image.built",
        f"{plan.ref.name}:{plan.ref.version}",
        {
            "image": image,
            "image_id": result_.image_id,
            "digest": result_.digest,
            "context_hash": plan.context.hash,
            "model_hash": plan.context.model_hash,
            "pushed": pushed,
        },
    )
    return result_


def eject(project: Project, path: Path, *, force: bool = False) -> Path:
    """Write the Dockerfile shipml would render to `path`, for the user to own."""
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    path.write_text(render(dockerfile_spec(project)))
    return path


def _load(project: Project, folder: Path, record: Record) -> Any:
    """The model as the server loads it (verified again, by the same function)."""
    from shipml.serve.model import Source, load

    try:
        allow = project.config.serve.allow_pickle
        return load(Source.registered(folder, record), allow_pickle=allow)
    except ShipmlError:
        raise
    except Exception as exc:
        raise BuildError(
            f"model {record.label} cannot be loaded ({type(exc).__name__}: {exc}); "
            f"an image of it would never become ready. Train and register it again"
        ) from None


def _read_sbom(builder: Builder, image: str) -> str:
    script = f"import sys; sys.stdout.write(open({SBOM_PATH!r}).read())"
    try:
        text = builder.run(image, [PYTHON, "-c", script])
        json.loads(text)
    except (BuildError, ValueError) as exc:
        raise BuildError(
            f"could not read the SBOM {SBOM_PATH} from {image} ({str(exc).splitlines()[0]}); "
            f"an ejected Dockerfile must keep the step that writes it"
        ) from None
    return text


def _fresh(path: Path) -> Path:
    path.unlink(missing_ok=True)
    return path
