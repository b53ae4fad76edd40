"""One conformance test for every image builder.

buildah builds, inspects, runs and starts a real image here. docker and podman cannot run on
these machines (no engine, and podman cannot start containers), so they run against
`FakeEngine`: it answers their exact commands (checked one by one in
tests/unit/build/test_build_builders.py) the way the engine would, running the image's
entrypoint as a host process. That proves they satisfy the protocol as shipml drives it, not
that docker itself works: the test says so by its parameter ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from shipml.build.builders import BuildahBuilder, DockerBuilder, PodmanBuilder
from shipml.build.smoke import free_port
from shipml.errors import BuildError
from tests._services.buildah import remove_images

ENTRYPOINT = [
    "/bin/sh",
    "-c",
    'echo "serving on $SHIPML_SERVE__PORT"; '
    'exec python3 -m http.server --bind 127.0.0.1 --directory /etc "$SHIPML_SERVE__PORT"',
]


def dockerfile(base: str) -> str:
    return (
        f"FROM {base}\nARG GREETING\nLABEL io.shipml.test.greeting=$GREETING\n"
        f"ENTRYPOINT {json.dumps(ENTRYPOINT)}\n"
    )


class FakeEngine:
    """docker's and podman's command line, answered by a host process per container."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.images: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], *, log: Path | None = None, timeout: float = 0) -> str:
        argv = list(argv)
        self.calls.append(argv)
        assert argv[0] == self.engine
        cmd = argv[1:]
        if cmd[0] == "info":
            return "fake-1.0\n"
        if cmd[0] == "build":
            return self._build(cmd, log)
        if cmd[:2] == ["image", "inspect"]:
            return json.dumps([self.images[cmd[-1]]])
        if cmd[:2] == ["run", "--rm"]:
            entry, image, rest = cmd[5], cmd[6], cmd[7:]  # run --rm --network none --entrypoint
            assert image in self.images
            return subprocess.run([entry, *rest], capture_output=True, text=True).stdout
        if cmd[:2] == ["run", "--detach"]:
            name, image = cmd[cmd.index("--name") + 1], cmd[-1]
            env = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--env")
            out = Path(f"/tmp/fake-engine-{name}.log")
            entry = self.images[image]["Config"]["Entrypoint"]
            with open(out, "wb") as f:
                process = subprocess.Popen(entry, env=env, stdout=f, stderr=subprocess.STDOUT)
            self.containers[name] = (process, out)
            return name + "\n"
        if cmd[:3] == ["inspect", "--format", "{{.State.Running}}"]:
            if cmd[-1] not in self.containers:
                raise BuildError(f"`{' '.join(argv)}` exited with 1: no such container")
            process, _ = self.containers[cmd[-1]]
            return "true\n" if process.poll() is None else "false\n"
        if cmd[0] == "logs":
            return self.containers[cmd[-1]][1].read_text()
        if cmd[:2] == ["rm", "--force"]:
            process, out = self.containers.pop(cmd[-1])
            process.kill()
            process.wait()
            out.unlink()
            return ""
        raise AssertionError(f"FakeEngine does not know `{' '.join(argv)}`")

    def _build(self, cmd: list[str], log: Path | None) -> str:
        text = Path(cmd[cmd.index("--file") + 1]).read_text()
        args = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--build-arg")
        labels = {
            k: re.sub(r"\$(\w+)", lambda m: args.get(m[1], ""), v)
            for k, v in re.findall(r"^LABEL (\S+)=(\S+)$", text, flags=re.M)
        }
        entry = json.loads(re.findall(r"^ENTRYPOINT (.*)$", text, flags=re.M)[0])
        image_id = "sha256:" + hashlib.sha256((text + json.dumps(args)).encode()).hexdigest()
        Path(cmd[cmd.index("--iidfile") + 1]).write_text(image_id)
        image = {"Id": image_id, "Size": len(text), "RepoDigests": [], "Config": {}}
        image["Config"] = {"Labels": labels, "Entrypoint": entry, "Cmd": None}
        for i, a in enumerate(cmd):
            if a == "--tag":
                self.images[cmd[i + 1]] = image
        if log is not None:
            log.write_text("fake build\n")
        return ""

    def spawn(self, argv: Sequence[str], *, log: Path) -> subprocess.Popen[bytes]:
        raise AssertionError("engines start containers with `run --detach`, not a process")


@pytest.fixture(params=["docker (fake engine)", "podman (fake engine)", "buildah (real)"])
def builder_and_base(request: pytest.FixtureRequest) -> tuple[Any, str]:
    if request.param.startswith("buildah"):
        base = request.getfixturevalue("base")  # skips, or fails in CI, without buildah
        return BuildahBuilder(), base
    engine = DockerBuilder if request.param.startswith("docker") else PodmanBuilder
    return engine(FakeEngine(engine.name)), "docker.io/library/python@sha256:" + "0" * 64


@pytest.mark.slow
def test_builder_conformance(builder_and_base: tuple[Any, str], tmp_path: Path) -> None:
    builder, base = builder_and_base
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile(base))
    tag = f"localhost/shipml-conformance:{builder.name}-{tmp_path.name[-8:]}"
    try:
        assert builder.problem() is None
        image_id = builder.build(
            context,
            dockerfile=context / "Dockerfile",
            tags=[tag],
            build_args={"GREETING": "hello"},
            timestamp=1_700_000_000,
            log=tmp_path / "build.log",
        )
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
        info = builder.inspect(tag)
        assert info.id == image_id and info.size > 0
        assert info.labels["io.shipml.test.greeting"] == "hello"
        assert list(info.entrypoint) == ENTRYPOINT
        assert builder.run(tag, ["python3", "-c", "print('hi from the image')"]).strip() == (
            "hi from the image"
        )
        port = free_port()
        container = builder.start(
            tag, port=port, env={"SHIPML_SERVE__PORT": str(port)}, log=tmp_path / "c.log"
        )
        try:
            assert container.url == f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{container.url}/", timeout=2) as r:
                        assert r.status == 200
                        break
                except OSError:
                    assert time.monotonic() < deadline, container.logs()
                    time.sleep(0.2)
            assert container.running()
            assert f"serving on {port}" in container.logs()
        finally:
            container.stop()
        assert not container.running()
    finally:
        if isinstance(builder, BuildahBuilder):
            remove_images(tag)
