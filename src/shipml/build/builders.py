"""Image builders: one small protocol, three implementations (docker, podman, buildah).

Each builder translates the same operations into its own command line: check that it can
work here, build a context, inspect the image, run a one-off command in it, start it as a
server, push it. Commands go through a `Runner`, so a test checks the exact commands docker
and podman would run on a machine that has neither, and runs buildah for real; one
conformance test holds all three to the protocol
(tests/integration/build/test_builder_conformance.py). The implementations live in
`_docker.py` (docker, podman) and `_buildah.py`, on the shared `_runner.py`.

buildah runs with `--isolation chroot`: it needs no OCI runtime and works inside CI
containers, but its containers share the host's network, so a started image listens on the
host port it is given (the smoke test passes the port through SHIPML_SERVE__PORT to every
builder alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from shipml.build._buildah import BuildahBuilder
from shipml.build._docker import DockerBuilder, PodmanBuilder
from shipml.build._runner import Container, ImageInfo, Runner, SubprocessRunner

__all__ = [
    "BUILDERS",
    "BuildahBuilder",
    "Builder",
    "Container",
    "DockerBuilder",
    "ImageInfo",
    "PodmanBuilder",
    "Runner",
    "SubprocessRunner",
    "detect",
]


class Builder(Protocol):
    """What shipml needs from an image builder."""

    name: str

    def problem(self) -> str | None:
        """None when this builder works here; otherwise why not, in one line."""

    def build(
        self,
        context: Path,
        *,
        dockerfile: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        timestamp: int,
        log: Path,
    ) -> str:
        """Build `context` and tag it; the image id (sha256:HEX). Output goes to `log`."""

    def inspect(self, image: str) -> ImageInfo: ...

    def run(self, image: str, argv: Sequence[str]) -> str:
        """Run one command in a new container of `image`; its standard output."""

    def start(self, image: str, *, port: int, env: Mapping[str, str], log: Path) -> Container:
        """Start `image` with its own entrypoint, reachable on 127.0.0.1:`port`."""

    def push(self, image: str, ref: str) -> str:
        """Push `image` as `ref` (REGISTRY/NAME:TAG); the registry's manifest digest."""


BUILDERS: dict[str, type[DockerBuilder] | type[BuildahBuilder]] = {
    "docker": DockerBuilder,
    "podman": PodmanBuilder,
    "buildah": BuildahBuilder,
}
"""In the order `build.builder: auto` tries them."""


def detect(choice: str, runner: Runner | None = None) -> tuple[Builder | None, str]:
    """The builder `build.builder` names, or the first that works for `auto`.

    Returns (builder, "") or (None, why none is usable: one reason per builder tried).
    """
    if choice == "none":
        return None, "build.builder is none"
    names = list(BUILDERS) if choice == "auto" else [choice]
    reasons = []
    for name in names:
        builder = BUILDERS[name](runner)
        problem = builder.problem()
        if problem is None:
            return builder, ""
        reasons.append(problem)
    return None, "; ".join(reasons)
