"""buildah with chroot isolation: no daemon, no OCI runtime; works as root in CI."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
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
    signal_group,
)
from shipml.errors import BuildError


class BuildahBuilder:
    """buildah with chroot isolation: no daemon, no OCI runtime, works as root in CI."""

    name = "buildah"
    isolation = ("--isolation", "chroot")

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or SubprocessRunner()

    def problem(self) -> str | None:
        try:
            self.runner.run(["buildah", "info"], timeout=30)
        except BuildError as exc:
            return problem_of("buildah", exc)
        return None

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
            self.runner.run(
                [
                    "buildah", "build", *self.isolation,
                    "--format", "docker",  # HEALTHCHECK exists only in the docker format
                    "--layers", "--force-rm", "--pull=false", "--timestamp", str(timestamp),
                    "--iidfile", str(iidfile), "--file", str(dockerfile),
                    *flags("--build-arg", build_args),
                    *[arg for tag in tags for arg in ("--tag", tag)],
                    str(context),
                ],
                log=log,
            )  # fmt: skip
            image_id = iidfile.read_text().strip() if iidfile.exists() else ""
        return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"

    def inspect(self, image: str) -> ImageInfo:
        data = json.loads(self.runner.run(["buildah", "inspect", "--type", "image", image]))
        manifest = json.loads(data.get("Manifest") or "{}")
        config = (data.get("Docker") or {}).get("config") or data["OCIv1"].get("config") or {}
        image_id = data["FromImageID"]
        return ImageInfo(
            id=image_id if image_id.startswith("sha256:") else f"sha256:{image_id}",
            digest=data.get("FromImageDigest") or None,
            size=sum(int(layer.get("size", 0)) for layer in manifest.get("layers", [])),
            labels=dict(config.get("Labels") or {}),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
        )

    def _container(self, image: str) -> str:
        name = f"shipml-{uuid.uuid4().hex[:12]}"
        self.runner.run(["buildah", "from", "--pull=false", "--name", name, image])
        return name

    def run(self, image: str, argv: Sequence[str]) -> str:
        name = self._container(image)
        try:
            return self.runner.run(["buildah", "run", *self.isolation, name, "--", *argv])
        finally:
            self.runner.run(["buildah", "rm", name])

    def start(self, image: str, *, port: int, env: Mapping[str, str], log: Path) -> Container:
        info = self.inspect(image)
        command = [*info.entrypoint, *info.cmd]
        if not command:
            raise BuildError(f"image {image} has neither ENTRYPOINT nor CMD; nothing to start")
        name = self._container(image)
        envs = flags("--env", env)
        try:
            process = self.runner.spawn(
                ["buildah", "run", *self.isolation, *envs, name, "--", *command], log=log
            )
        except BaseException:
            self.runner.run(["buildah", "rm", name])
            raise
        return _ProcessContainer(f"http://127.0.0.1:{port}", process, log, self.runner, name)

    def push(self, image: str, ref: str) -> str:
        with tempfile.TemporaryDirectory(prefix="shipml-digest-") as tmp:
            digestfile = Path(tmp) / "digest"
            self.runner.run(
                ["buildah", "push", "--digestfile", str(digestfile), image, f"docker://{ref}"]
            )
            return digestfile.read_text().strip()


@dataclass
class _ProcessContainer:
    """A `buildah run` process: its own process group, its output in a log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    runner: Runner
    name: str

    def running(self) -> bool:
        return self.process.poll() is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                signal_group(self.process, signal.SIGKILL)
                self.process.wait(10)
        with contextlib.suppress(BuildError):
            self.runner.run(["buildah", "rm", self.name])
