"""Lineage: the chain from a raw source to a registered model version, read from step runs.

Links are followed by content, not by which `shipml run` produced them: the register step
names an MLflow run, the train step that produced that run names its snapshot, and the
snapshot is traced back to the validation that passed it and the ingest that read its raw
source. So a model trained by separate `shipml ingest` / `train` / `register` commands has the
same lineage as one from a single `shipml run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipml.errors import StateError
from shipml.state.store import StateStore, StepRecord


@dataclass(frozen=True)
class Link:
    stage: str
    label: str
    hash: str | None
    at: str
    step_id: str
    details: dict[str, Any]


def lineage(store: StateStore, model: str, version: int) -> list[Link]:
    """Raw source -> snapshot -> validation -> MLflow run -> model version -> image (when
    one was built), oldest first."""
    ok = [s for s in store.steps() if s.status == "succeeded"]
    register = _last(
        s
        for s in ok
        if s.stage == "register"
        and s.outputs.get("model") == model
        and s.outputs.get("version") == version
    )
    if register is None:
        raise StateError(
            f"no registration of {model}:{version} is recorded in this state store; "
            f"check the name and version with `shipml registry versions`"
        )
    run_id = register.inputs["mlflow_run_id"]
    train = _last(s for s in ok if s.stage == "train" and s.outputs.get("mlflow_run_id") == run_id)
    if train is None:
        raise StateError(f"the training step of MLflow run {run_id} is not recorded")
    snap = train.inputs["snapshot"]
    validate = _last(
        s
        for s in ok
        if s.stage == "validate"
        and s.inputs.get("snapshot") == snap
        and s.started_at <= train.started_at
    )
    ingest = _last(
        s
        for s in ok
        if s.stage == "ingest"
        and s.outputs.get("snapshot") == snap
        and s.started_at <= train.started_at
    )
    chain: list[Link] = []
    if ingest is not None:
        chain.append(
            Link(
                "source",
                ingest.inputs["source"],
                ingest.outputs["source_hash"],
                ingest.started_at,
                ingest.id,
                {},
            )
        )
        chain.append(
            Link(
                "snapshot",
                snap,
                ingest.outputs["content_hash"],
                ingest.started_at,
                ingest.id,
                {"rows": ingest.outputs.get("rows")},
            )
        )
    if validate is not None:
        chain.append(
            Link(
                "validation",
                f"suite {validate.inputs['suite']}",
                validate.inputs.get("suite_hash"),
                validate.started_at,
                validate.id,
                {"evaluated": validate.outputs.get("evaluated")},
            )
        )
    chain.append(
        Link(
            "training",
            f"mlflow run {run_id}",
            train.outputs.get("model_uri"),
            train.started_at,
            train.id,
            {"git_commit": train.outputs.get("git_commit")},
        )
    )
    chain.append(
        Link(
            "model",
            f"{model}:{version}",
            register.outputs.get("model_uri"),
            register.started_at,
            register.id,
            {"alias": register.outputs.get("alias")},
        )
    )
    build = _last(
        s
        for s in ok
        if s.stage == "build"
        and s.inputs.get("model") == model
        and s.inputs.get("version") == version
        and s.outputs.get("image_id")
    )
    if build is not None:
        chain.append(
            Link(
                "image",
                build.outputs["image"],
                build.outputs.get("digest") or build.outputs["image_id"],
                build.started_at,
                build.id,
                {
                    "image_id": build.outputs["image_id"],
                    "context_hash": build.inputs.get("context_hash"),
                    "pushed": build.outputs.get("pushed"),
                    "sbom": build.outputs.get("sbom"),
                },
            )
        )
    return chain


def _last(steps: Any) -> StepRecord | None:
    found = None
    for s in steps:
        found = s
    return found
