"""docker and podman: engines that run containers in the background."""

from __future__ import annotations

import contextlib
import json
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipml.build._runner import (
    Container,
    ImageInfo,
    Runner,
    SubprocessRunner,
    flags,
    problem_of,
)
from shipml.errors import BuildError


class DockerBuilder:
    """docker (the engine must answer: the client alone cannot build)."""

    name = "docker"

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or SubprocessRunner()

    def problem(self) -> str | None:
        try:
            self.runner.run([self.name, "info", "--format", "{{.ServerVersion}}"], timeout=20)
        except BuildError as exc:
            return problem_of(self.name, exc)
        return None

    def build_argv(
        self,
        context: Path,
        dockerfile: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        timestamp: int,
        iidfile: Path,
    ) -> list[str]:
        args = {"SOURCE_DATE_EPOCH": str(timestamp), **build_args}
        return [
            self.name,
            "build",
            "--file",
            str(dockerfile),
            "--network",
            "none",
            "--iidfile",
            str(iidfile),
            *flags("--build-arg", args),
            *[arg for tag in tags for arg in ("--tag", tag)],
            str(context),
        ]

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
        with tempfile.TemporaryDirectory(prefix="shipml-iid-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = self.build_argv(context, dockerfile, tags, build_args, timestamp, iidfile)
            self.runner.run(argv, log=log)
            return iidfile.read_text().strip() if iidfile.exists() else self._id(tags[0])

    def _id(self, image: str) -> str:
        return self.inspect(image).id

    def inspect(self, image: str) -> ImageInfo:
        out = self.runner.run([self.name, "image", "inspect", image])
        [data] = json.loads(out)
        config = data.get("Config") or {}
        digests = data.get("RepoDigests") or []
        return ImageInfo(
            id=data["Id"],
            digest=digests[0].rpartition("@")[2] if digests else None,
            size=int(data.get("Size") or 0),
            labels=dict(config.get("Labels") or {}),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
        )

    def run(self, image: str, argv: Sequence[str]) -> str:
        return self.runner.run(
            [self.name, "run", "--rm", "--network", "none", "--entrypoint", argv[0], image,
             *argv[1:]]
        )  # fmt: skip

    def start(self, image: str, *, port: int, env: Mapping[str, str], log: Path) -> Container:
        name = f"shipml-smoke-{uuid.uuid4().hex[:12]}"
        self.runner.run(
            [
                self.name, "run", "--detach", "--name", name,
                "--publish", f"127.0.0.1:{port}:{port}",
                *flags("--env", env),
                image,
            ]
        )  # fmt: skip
        return _EngineContainer(self.name, name, f"http://127.0.0.1:{port}", self.runner, log)

    def push(self, image: str, ref: str) -> str:
        if ref != image:
            self.runner.run([self.name, "tag", image, ref])
        self.runner.run([self.name, "push", ref])
        out = self.runner.run(
            [self.name, "image", "inspect", "--format", "{{json .RepoDigests}}", ref]
        )
        repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        for entry in json.loads(out) or []:
            if entry.startswith(f"{repo}@"):
                return str(entry.rpartition("@")[2])
        raise BuildError(f"{self.name} pushed {ref} but reports no digest for it: {out.strip()}")


class PodmanBuilder(DockerBuilder):
    """podman: docker's command line, plus the docker image format (for HEALTHCHECK), a fixed
    timestamp and the pushed digest written to a file."""

    name = "podman"

    def build_argv(
        self,
        context: Path,
        dockerfile: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        timestamp: int,
        iidfile: Path,
    ) -> list[str]:
        argv = super().build_argv(context, dockerfile, tags, build_args, timestamp, iidfile)
        return [*argv[:2], "--format", "docker", "--timestamp", str(timestamp), *argv[2:]]

    def push(self, image: str, ref: str) -> str:
        with tempfile.TemporaryDirectory(prefix="shipml-digest-") as tmp:
            digestfile = Path(tmp) / "digest"
            self.runner.run(
                [self.name, "push", "--digestfile", str(digestfile), image, f"docker://{ref}"]
            )
            return digestfile.read_text().strip()


@dataclass
class _EngineContainer:
    """A container an engine (docker, podman) runs in the background."""

    engine: str
    name: str
    url: str
    runner: Runner
    log: Path

    def running(self) -> bool:
        try:
            state = self.runner.run(
                [self.engine, "inspect", "--format", "{{.State.Running}}", self.name]
            )
        except BuildError:
            return False
        return state.strip() == "true"

    def logs(self) -> str:
        try:
            text = self.runner.run([self.engine, "logs", self.name])
        except BuildError as exc:
            text = str(exc)
        self.log.write_text(text)
        return text

    def stop(self) -> None:
        self.logs()
        with contextlib.suppress(BuildError):
            self.runner.run([self.engine, "rm", "--force", self.name])
