"""The rendered Dockerfile and the context hash: deterministic, complete, and sensitive."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipml.build.dockerfile import (
    BUILD_ARGS,
    DockerfileSpec,
    context_hash,
    read_build_args,
    render,
    write_build_args,
)
from shipml.config import parse_config

BASE = "docker.io/library/python:3.11-slim-bookworm@sha256:" + "ab" * 32
SPEC = DockerfileSpec(base=BASE, uid=10001, port=8080, shipml_version="0.1.0")


def test_identical_inputs_render_identical_text() -> None:
    assert render(SPEC) == render(DockerfileSpec(BASE, 10001, 8080, "0.1.0"))
    assert render(SPEC) != render(DockerfileSpec(BASE.replace("ab", "cd"), 10001, 8080, "0.1.0"))


def test_every_stage_starts_from_the_pinned_base() -> None:
    froms = re.findall(r"^FROM (\S+)", render(SPEC), flags=re.M)
    assert froms == [BASE, BASE, BASE]


def test_serves_as_a_non_root_user_with_healthcheck_and_entrypoint() -> None:
    text = render(SPEC)
    assert re.search(r"^USER 10001:10001$", text, flags=re.M)
    assert "EXPOSE 8080" in text
    [health] = re.findall(r"CMD (\[.*\])$", text, flags=re.M)
    assert "/readyz" in json.loads(health)[-1]
    [entry] = re.findall(r"^ENTRYPOINT (.*)$", text, flags=re.M)
    shell, flag, command = json.loads(entry)
    assert (shell, flag) == ("/bin/sh", "-c")
    assert command == (  # verified against the record the build baked in, no registry
        "exec /opt/shipml/venv/bin/shipml serve /opt/shipml/model "
        "--record /opt/shipml/model.record.json --project /opt/shipml"
    )
    assert "SHIPML_MODEL_NAME=$MODEL_NAME SHIPML_MODEL_VERSION=$MODEL_VERSION" in text


def test_installs_offline_with_hashes_and_verifies_the_model() -> None:
    text = render(SPEC)
    assert "--no-index" in text and "--require-hashes" in text and "--no-deps" in text
    assert 'echo "${MODEL_HASH#sha256:}  model.sha256" | sha256sum --check --strict' in text
    assert "sha256sum --check --strict --quiet ../model.sha256" in text
    assert 'grep -q "\\"hash\\": \\"$MODEL_HASH\\"" model.record.json' in text
    assert "python -m shipml.build.sbom" in text


def test_labels_name_commit_model_and_snapshot_through_build_args() -> None:
    text = render(SPEC)
    final = text[text.rindex("\nFROM ") :]
    for arg in BUILD_ARGS:
        assert f"ARG {arg}\n" in final
    for label, arg in [
        ("org.opencontainers.image.revision", "GIT_COMMIT"),
        ("org.opencontainers.image.title", "MODEL_NAME"),
        ("org.opencontainers.image.version", "MODEL_VERSION"),
        ("io.shipml.model.hash", "MODEL_HASH"),
        ("io.shipml.snapshot.hash", "SNAPSHOT_HASH"),
    ]:
        assert f'{label}="${arg}"' in final
    assert "created" not in final  # no clock in the labels


def test_build_args_round_trip_and_refuse_newlines(tmp_path: Path) -> None:
    args = {"MODEL_NAME": "credit", "MODEL_VERSION": "3", "MODEL_HASH": "sha256:00"}
    write_build_args(tmp_path, args)
    assert read_build_args(tmp_path) == args
    with pytest.raises(ValueError, match="cannot be written"):
        write_build_args(tmp_path, {"SNAPSHOT": "a\nb"})


def _write(root: Path, files: dict[str, bytes], order: list[str]) -> None:
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])


names = st.lists(
    st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6})?", fullmatch=True), min_size=1, max_size=6, unique=True
).filter(lambda ns: not any(a != b and b.startswith(a + "/") for a in ns for b in ns))


@settings(max_examples=40, deadline=None)
@given(names=names, data=st.data())
def test_context_hash_ignores_creation_order_and_sees_every_byte(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], data: st.DataObject
) -> None:
    files = {n: data.draw(st.binary(max_size=64), label=n) for n in names}
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    _write(a, files, names)
    _write(b, files, list(reversed(names)))
    assert context_hash(a) == context_hash(b)
    victim = data.draw(st.sampled_from(names), label="victim")
    (b / victim).write_bytes(files[victim] + b"\0")
    assert context_hash(a) != context_hash(b)


def test_context_hash_sees_names_modes_and_build_args(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    write_build_args(tmp_path, {"MODEL_VERSION": "1"})
    first = context_hash(tmp_path)
    write_build_args(tmp_path, {"MODEL_VERSION": "2"})
    assert context_hash(tmp_path) != first
    write_build_args(tmp_path, {"MODEL_VERSION": "1"})
    assert context_hash(tmp_path) == first
    (tmp_path / "Dockerfile").chmod(0o755)
    assert context_hash(tmp_path) != first
    (tmp_path / "Dockerfile").chmod(0o644)
    (tmp_path / "Dockerfile").rename(tmp_path / "Containerfile")
    assert context_hash(tmp_path) != first


def test_context_refuses_symbolic_links(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="symbolic link"):
        context_hash(tmp_path)


@pytest.mark.parametrize(
    "base",
    [
        "python:3.11-slim",
        "python:3.11-slim@sha256:abc",
        "python@sha256:" + "G" * 64,
    ],
)
def test_config_refuses_a_base_not_pinned_by_digest(base: str) -> None:
    from shipml.errors import ConfigError

    with pytest.raises(ConfigError, match=r"build\.base.*pin the base image by digest"):
        parse_config({"project": "demo", "build": {"base": base}})


def test_default_base_is_an_official_python_slim_image_pinned_by_digest() -> None:
    base = parse_config({"project": "demo"}).build.base
    assert base.startswith("docker.io/library/python:3.11-slim")
    assert re.fullmatch(r".*@sha256:[0-9a-f]{64}", base)
