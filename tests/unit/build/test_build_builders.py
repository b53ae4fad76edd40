"""The exact commands each builder runs, and how `auto` picks one.

docker and podman cannot run on these machines (no engine), so their commands are checked
here against a recording runner; buildah's are checked too, and it also runs for real in
tests/integration/build/test_builder_conformance.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from shipml.build.builders import (
    BuildahBuilder,
    DockerBuilder,
    PodmanBuilder,
    SubprocessRunner,
    detect,
)
from shipml.errors import BuildError

ARGS = {"MODEL_NAME": "credit", "MODEL_VERSION": "3"}
TAGS = ["localhost/credit:3", "localhost/credit:3-0123456789ab"]


class Recorder:
    """A Runner that records argv, answers from a table, and fails commands it is told to."""

    def __init__(self, answers: dict[str, str] | None = None, fail: Sequence[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers or {}
        self.fail = fail

    def run(self, argv: Sequence[str], *, log: Path | None = None, timeout: float = 0) -> str:
        self.calls.append(list(argv))
        line = " ".join(argv)
        if any(line.startswith(f) for f in self.fail):
            raise BuildError(f"`{line}` exited with 1; its last lines:\nno engine here")
        for flag in ("--iidfile", "--digestfile"):
            if flag in argv:
                Path(argv[list(argv).index(flag) + 1]).write_text("sha256:" + "f" * 64)
        for prefix, answer in self.answers.items():
            if line.startswith(prefix):
                return answer
        return ""

    def spawn(self, argv: Sequence[str], *, log: Path) -> subprocess.Popen[bytes]:
        self.calls.append(list(argv))
        return subprocess.Popen(["sleep", "30"], start_new_session=True)


def build(builder: DockerBuilder | BuildahBuilder, tmp_path: Path) -> str:
    return builder.build(
        tmp_path / "ctx",
        dockerfile=tmp_path / "ctx" / "Dockerfile",
        tags=TAGS,
        build_args=ARGS,
        timestamp=1700000000,
        log=tmp_path / "build.log",
    )


def test_docker_builds_without_network_with_args_and_tags(tmp_path: Path) -> None:
    runner = Recorder()
    assert build(DockerBuilder(runner), tmp_path) == "sha256:" + "f" * 64
    [argv] = runner.calls
    iid = argv[argv.index("--iidfile") + 1]
    assert argv == [
        "docker", "build", "--file", f"{tmp_path}/ctx/Dockerfile", "--network", "none",
        "--iidfile", iid,
        "--build-arg", "MODEL_NAME=credit", "--build-arg", "MODEL_VERSION=3",
        "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
        "--tag", TAGS[0], "--tag", TAGS[1], f"{tmp_path}/ctx",
    ]  # fmt: skip


def test_podman_keeps_the_docker_format_and_a_fixed_timestamp(tmp_path: Path) -> None:
    runner = Recorder()
    build(PodmanBuilder(runner), tmp_path)
    [argv] = runner.calls
    assert argv[:6] == ["podman", "build", "--format", "docker", "--timestamp", "1700000000"]
    assert argv[-1] == f"{tmp_path}/ctx" and "--network" in argv


def test_buildah_uses_chroot_isolation_layers_and_never_pulls_a_present_base(
    tmp_path: Path,
) -> None:
    runner = Recorder()
    build(BuildahBuilder(runner), tmp_path)
    [argv] = runner.calls
    iid = argv[argv.index("--iidfile") + 1]
    assert argv == [
        "buildah", "build", "--isolation", "chroot", "--format", "docker", "--layers",
        "--force-rm", "--pull=false", "--timestamp", "1700000000", "--iidfile", iid,
        "--file", f"{tmp_path}/ctx/Dockerfile",
        "--build-arg", "MODEL_NAME=credit", "--build-arg", "MODEL_VERSION=3",
        "--tag", TAGS[0], "--tag", TAGS[1], f"{tmp_path}/ctx",
    ]  # fmt: skip


DOCKER_INSPECT = json.dumps(
    [
        {
            "Id": "sha256:" + "1" * 64,
            "RepoDigests": [],
            "Size": 123,
            "Config": {"Labels": {"a": "b"}, "Entrypoint": ["shipml"], "Cmd": None},
        }
    ]
)


@pytest.mark.parametrize("engine", [DockerBuilder, PodmanBuilder])
def test_engines_start_publish_the_port_and_clean_up(
    engine: type[DockerBuilder], tmp_path: Path
) -> None:
    runner = Recorder(
        {f"{engine.name} logs": "server log line\n", f"{engine.name} inspect": "true"}
    )
    builder = engine(runner)
    container = builder.start(
        TAGS[0], port=4321, env={"SHIPML_SERVE__PORT": "4321"}, log=tmp_path / "c.log"
    )
    assert container.url == "http://127.0.0.1:4321" and container.running()
    run = runner.calls[0]
    name = run[run.index("--name") + 1]
    assert run == [
        engine.name, "run", "--detach", "--name", name, "--publish", "127.0.0.1:4321:4321",
        "--env", "SHIPML_SERVE__PORT=4321", TAGS[0],
    ]  # fmt: skip
    container.stop()
    assert runner.calls[-1] == [engine.name, "rm", "--force", name]
    assert (tmp_path / "c.log").read_text() == "server log line\n"


def test_docker_one_off_run_inspect_and_push(tmp_path: Path) -> None:
    ref = "ghcr.io/acme/credit:3"
    digests = json.dumps([f"ghcr.io/acme/credit@sha256:{'9' * 64}"])
    runner = Recorder(
        {
            "docker image inspect --format": digests,
            "docker image inspect": DOCKER_INSPECT,
            "docker run --rm": "{}",
        }
    )
    builder = DockerBuilder(runner)
    assert builder.run(TAGS[0], ["/opt/shipml/venv/bin/python", "-c", "print(1)"]) == "{}"
    assert runner.calls[-1] == [
        "docker", "run", "--rm", "--network", "none", "--entrypoint",
        "/opt/shipml/venv/bin/python", TAGS[0], "-c", "print(1)",
    ]  # fmt: skip
    info = builder.inspect(TAGS[0])
    assert (info.id, info.size, info.labels, info.entrypoint) == (
        "sha256:" + "1" * 64,
        123,
        {"a": "b"},
        ("shipml",),
    )
    assert builder.push(TAGS[0], ref) == "sha256:" + "9" * 64
    assert runner.calls[-3:-1] == [["docker", "tag", TAGS[0], ref], ["docker", "push", ref]]


def test_podman_and_buildah_push_with_a_digest_file() -> None:
    for builder in (PodmanBuilder(Recorder()), BuildahBuilder(Recorder())):
        assert builder.push(TAGS[0], "ghcr.io/acme/credit:3") == "sha256:" + "f" * 64
        argv = builder.runner.calls[-1]
        assert argv[:3] == [builder.name, "push", "--digestfile"]
        assert argv[-2:] == [TAGS[0], "docker://ghcr.io/acme/credit:3"]


def test_buildah_starts_the_images_own_entrypoint_in_a_working_container(tmp_path: Path) -> None:
    inspect = json.dumps(
        {
            "FromImageID": "2" * 64,
            "FromImageDigest": "sha256:" + "3" * 64,
            "Manifest": json.dumps({"layers": [{"size": 10}, {"size": 5}]}),
            "Docker": {"config": {"Entrypoint": ["/opt/shipml/venv/bin/shipml", "serve"]}},
            "OCIv1": {"config": {}},
        }
    )
    runner = Recorder({"buildah inspect": inspect})
    builder = BuildahBuilder(runner)
    info = builder.inspect(TAGS[0])
    assert (info.id, info.digest, info.size) == ("sha256:" + "2" * 64, "sha256:" + "3" * 64, 15)
    container = builder.start(
        TAGS[0], port=4321, env={"SHIPML_SERVE__PORT": "4321"}, log=tmp_path / "c.log"
    )
    frm, run = runner.calls[-2:]
    name = frm[frm.index("--name") + 1]
    assert frm == ["buildah", "from", "--pull=false", "--name", name, TAGS[0]]
    assert run == [
        "buildah", "run", "--isolation", "chroot", "--env", "SHIPML_SERVE__PORT=4321", name,
        "--", "/opt/shipml/venv/bin/shipml", "serve",
    ]  # fmt: skip
    assert container.running()
    container.stop()
    assert not container.running() and runner.calls[-1] == ["buildah", "rm", name]


def test_auto_takes_the_first_builder_that_works_and_says_why_others_do_not() -> None:
    runner = Recorder(fail=["docker info", "podman info"])
    builder, why = detect("auto", runner)
    assert isinstance(builder, BuildahBuilder) and why == ""
    assert [c[0] for c in runner.calls] == ["docker", "podman", "buildah"]
    none, why = detect("auto", Recorder(fail=["docker", "podman", "buildah"]))
    assert none is None
    assert why.count("no engine here") == 3 and why.startswith("docker: ")
    assert detect("none", Recorder()) == (None, "build.builder is none")
    named, _ = detect("podman", Recorder())
    assert isinstance(named, PodmanBuilder)


def test_a_failing_command_reports_its_exit_code_and_last_lines(tmp_path: Path) -> None:
    script = "import sys; print('\\n'.join(f'line {i}' for i in range(100))); sys.exit(3)"
    with pytest.raises(BuildError) as err:
        SubprocessRunner().run(["python3", "-c", script], log=tmp_path / "log")
    message = str(err.value)
    assert "exited with 3" in message and "line 99" in message and "line 10\n" not in message
    assert f"full log: {tmp_path / 'log'}" in message
    with pytest.raises(BuildError, match="no-such-builder-binary is not installed"):
        SubprocessRunner().run(["no-such-builder-binary", "info"])


def test_a_missing_builder_is_named_in_one_short_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    builder, why = detect("auto")
    assert builder is None
    assert why == "docker: not installed; podman: not installed; buildah: not installed"
