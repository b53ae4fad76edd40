"""The Dockerfile shipml renders, and the hash that makes a build context checkable.

The Dockerfile depends only on the project's build settings (base image, user id, port) and
the shipml version: everything that changes from one model version to the next (name,
version, hashes, commit) arrives as a build argument and becomes an OCI label. So one
Dockerfile builds every version, identical inputs render identical text, and a user can
eject it (`shipml build --eject`) and own it.

The build context it expects (assembled by `context.py`):

    Dockerfile          this file (or the user's own)
    build-args.env      KEY=VALUE per line: the build arguments of this build
    requirements.txt    NAME==VERSION --hash=sha256:HEX for every wheel (pip --require-hashes)
    wheels/             the serving environment's wheels, locked by the training run
    tools/              the pip wheel that installs them (pip itself is not installed)
    model/              the registered MLflow model folder
    model.sha256        `sha256sum` manifest of model/; its own hash is MODEL_HASH
    model.record.json   the registration record (manifest, hash, skops trusted types) the
                        server verifies model/ against before loading it (`--record`)
    shipml.yaml         the serving settings of the image (project name, serve section)
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipml._hashing import sha256_file, sha256_json

__all__ = ["BUILD_ARGS", "DockerfileSpec", "context_hash", "read_build_args", "render"]

BUILD_ARGS = (
    "MODEL_NAME",
    "MODEL_VERSION",
    "MODEL_HASH",
    "PYTHON_VERSION",
    "GIT_COMMIT",
    "SNAPSHOT",
    "SNAPSHOT_HASH",
    "MLFLOW_RUN_ID",
)
"""Every build argument the rendered Dockerfile declares; build-args.env sets each one."""

APP = "/opt/shipml"
STATE = "/var/lib/shipml"


@dataclass(frozen=True)
class DockerfileSpec:
    base: str
    uid: int
    port: int
    shipml_version: str


def render(spec: DockerfileSpec) -> str:
    venv = f"{APP}/venv"
    probe = (
        "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' "
        f"% os.environ.get('SHIPML_SERVE__PORT', '{spec.port}'), timeout=2)"
    )
    version_check = (
        "import sys; v = '%d.%d' % sys.version_info[:2]; sys.exit(0 if v == '${PYTHON_VERSION}' "
        "else 'the base image has Python ' + v + ', the model was trained with Python "
        "${PYTHON_VERSION}: set build.base to a Python ${PYTHON_VERSION} image')"
    )
    # `exec` makes shipml serve PID 1 (it gets SIGTERM). The server verifies the model
    # folder against the registration record the build baked in (no registry in the image)
    # before loading it; the record names the model and version its metrics carry.
    serve = (
        f"exec {venv}/bin/shipml serve {APP}/model --record {APP}/model.record.json --project {APP}"
    )
    entrypoint = ["/bin/sh", "-c", serve]
    healthcheck = [f"{venv}/bin/python", "-c", probe]
    labels = {
        "org.opencontainers.image.title": "$MODEL_NAME",
        "org.opencontainers.image.version": "$MODEL_VERSION",
        "org.opencontainers.image.revision": "$GIT_COMMIT",
        "org.opencontainers.image.description": "shipml serve: $MODEL_NAME version $MODEL_VERSION",
        "org.opencontainers.image.base.name": spec.base,
        "io.shipml.model.name": "$MODEL_NAME",
        "io.shipml.model.version": "$MODEL_VERSION",
        "io.shipml.model.hash": "$MODEL_HASH",
        "io.shipml.snapshot": "$SNAPSHOT",
        "io.shipml.snapshot.hash": "$SNAPSHOT_HASH",
        "io.shipml.mlflow.run_id": "$MLFLOW_RUN_ID",
        "io.shipml.version": spec.shipml_version,
    }
    label_lines = " \\\n      ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"""\
# The serving image of a shipml model, rendered by shipml {spec.shipml_version} from the
# `build` section of shipml.yaml. Own it with `shipml build --eject`: the file is written
# to your project and build.dockerfile points at it. `shipml build` still assembles the
# context (wheels/, tools/, model/, requirements.txt, model.sha256, shipml.yaml) and passes
# the build arguments listed in build-args.env.

# 1. The model, checked against the hash recorded when it was registered.
FROM {spec.base} AS model
ARG MODEL_HASH
COPY model.sha256 model.record.json {APP}/
COPY model/ {APP}/model/
RUN cd {APP} \\
 && echo "${{MODEL_HASH#sha256:}}  model.sha256" | sha256sum --check --strict --quiet \\
 && grep -q "\\"hash\\": \\"$MODEL_HASH\\"" model.record.json \\
 && cd model && sha256sum --check --strict --quiet ../model.sha256

# 2. The serving environment: `shipml[serve]` at the versions the training run locked,
#    installed offline from the context with every wheel's hash checked.
FROM {spec.base} AS install
ARG PYTHON_VERSION
ARG MODEL_NAME
ARG MODEL_VERSION
COPY tools/ /tmp/tools/
COPY requirements.txt /tmp/wheels/
COPY wheels/ /tmp/wheels/
RUN python3 -c "{version_check}" \\
 && python3 -m venv --without-pip {venv} \\
 && pip_wheel=$(echo /tmp/tools/pip-*.whl) \\
 && {venv}/bin/python "$pip_wheel/pip" install --no-index --find-links /tmp/wheels \\
      --no-deps --require-hashes --no-compile --no-cache-dir --disable-pip-version-check \\
      --quiet --requirement /tmp/wheels/requirements.txt \\
 && {venv}/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash {venv}/lib \\
 && SHIPML_SBOM_NAME="$MODEL_NAME" SHIPML_SBOM_VERSION="$MODEL_VERSION" \\
      {venv}/bin/python -m shipml.build.sbom /tmp/wheels/requirements.txt > {APP}/sbom.cdx.json

# 3. The image: the base, the environment and the model, served by a non-root user.
FROM {spec.base}
{chr(10).join(f"ARG {name}" for name in BUILD_ARGS)}
LABEL {label_lines}
RUN echo "shipml:x:{spec.uid}:{spec.uid}:shipml:{STATE}:/usr/sbin/nologin" >> /etc/passwd \\
 && echo "shipml:x:{spec.uid}:" >> /etc/group \\
 && mkdir -p {STATE} \\
 && chown {spec.uid}:{spec.uid} {STATE}
COPY --from=install {APP}/ {APP}/
COPY --from=model {APP}/ {APP}/
COPY shipml.yaml {APP}/shipml.yaml
USER {spec.uid}:{spec.uid}
WORKDIR {STATE}
ENV PATH={venv}/bin:$PATH HOME={STATE} PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    SHIPML_MODEL_NAME=$MODEL_NAME SHIPML_MODEL_VERSION=$MODEL_VERSION
EXPOSE {spec.port}
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \\
  CMD {json.dumps(healthcheck)}
ENTRYPOINT {json.dumps(entrypoint)}
"""


def read_build_args(context: Path) -> dict[str, str]:
    """The KEY=VALUE lines of `context/build-args.env`."""
    args = {}
    for line in (context / "build-args.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            args[key] = value
    return args


def write_build_args(context: Path, args: Mapping[str, str]) -> None:
    for key, value in args.items():
        if "\n" in value or "=" in key:
            raise ValueError(f"build argument {key}={value!r} cannot be written to a line")
    lines = [f"{k}={args[k]}" for k in sorted(args)]
    (context / "build-args.env").write_text("\n".join(lines) + "\n")


def context_hash(context: Path) -> str:
    """One hash of everything a builder reads: each file's path, content and executable bit
    (the Dockerfile and build-args.env included). Equal contexts build equal images."""
    entries = []
    for path in sorted(context.rglob("*"), key=lambda p: p.relative_to(context).as_posix()):
        if path.is_symlink():
            raise ValueError(f"{path} is a symbolic link; a build context holds only files")
        if path.is_dir():
            continue
        executable = bool(os.stat(path).st_mode & stat.S_IXUSR)
        entries.append([path.relative_to(context).as_posix(), sha256_file(path), executable])
    return sha256_json(entries)
