"""The build stage of `shipml run`: skipped with a notice when no builder can run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipml.config import Project, load_project
from shipml.errors import BuildError
from shipml.pipeline import ORDER, run_stages


def project(tmp_path: Path, builder: str) -> Project:
    (tmp_path / "shipml.yaml").write_text(
        yaml.safe_dump({"project": "demo", "build": {"builder": builder}})
    )
    return load_project(tmp_path, env={})


def test_build_runs_after_register_and_before_deploy() -> None:
    assert ORDER.index("build") == ORDER.index("register") + 1
    assert ORDER.index("deploy") == ORDER.index("build") + 1


def test_no_builder_found_skips_with_the_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run_stages(project(tmp_path, "auto"), ["build"])
    [step] = result.steps
    assert result.ok and step.status == "done"
    assert step.outputs == {
        "skipped": True,
        "reason": "no image builder found (docker: not installed; podman: not installed; "
        "buildah: not installed); install docker, podman or buildah",
    }
    assert step.summary.startswith("skipped: no image builder found (docker: not installed;")


def test_auto_skips_when_the_found_builder_lacks_the_base_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto` never pulls: offline, or on a closed network, `shipml run` must still finish."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "buildah"  # answers `info`, knows no image
    fake.write_text('#!/bin/sh\n[ "$1" = info ] && exit 0\necho "image not known" >&2\nexit 125\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    result = run_stages(project(tmp_path, "auto"), ["build"])
    [step] = result.steps
    assert result.ok and step.outputs["skipped"]
    assert "buildah has no local copy of the base image docker.io/library/python" in step.summary
    assert "build.builder: buildah" in step.summary  # how to let it pull instead


def test_builder_none_skips(tmp_path: Path) -> None:
    [step] = run_stages(project(tmp_path, "none"), ["build"]).steps
    assert step.summary == "skipped (build.builder: none)" and step.outputs["skipped"]


def test_a_named_builder_that_cannot_run_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BuildError, match=r"build.builder is 'podman' but it cannot build here"):
        run_stages(project(tmp_path, "podman"), ["build"])
