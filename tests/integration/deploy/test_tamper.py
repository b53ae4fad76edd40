"""A registered model's files are what was registered, or nothing of them runs.

One byte changed in a version's files, in the artifact store (a version not fetched yet) or
in the serve cache (a version fetched before), makes serve, deploy, promote, rollback and
build refuse, naming the file; no release is recorded and what served keeps serving. A
version edited to run code (a `code/` module, a pickle) runs none of it: no marker file.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from shipml.config import Project, load_project
from shipml.errors import ModelIntegrityError
from shipml.state.releases import Releases
from shipml.state.store import StateStore
from tests.integration.deploy.conftest import Rollout

pytestmark = pytest.mark.slow


def artifacts(project: Project, version: int) -> Path:
    """The logged model's folder in the artifact store (shared with the session's project)."""
    from urllib.parse import urlparse

    from shipml._libs import mlflow_client
    from shipml.registry.models import get_version

    client = mlflow_client(project.tracking_uri)
    model_id = get_version(project, version).source.removeprefix("models:/")
    return Path(urlparse(client.get_logged_model(model_id).artifact_location).path)


@contextmanager
def edited(*changes: tuple[Path, bytes]) -> Iterator[None]:
    """Files replaced for the block (or one byte flipped, for b""), then put back."""
    saved = [(path, path.read_bytes()) for path, _ in changes]
    try:
        for path, new in changes:
            old = path.read_bytes()
            middle = len(old) // 2
            path.write_bytes(new or old[:middle] + bytes([old[middle] ^ 1]) + old[middle + 1 :])
        yield
    finally:
        for path, old in saved:
            path.write_bytes(old)


def serve(project: Project, ref: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shipml",
            "serve",
            ref,
            "--project",
            str(project.root),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )


class _OpensMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.marker), "w"))


def test_a_changed_byte_is_refused_everywhere_and_nothing_is_released(
    registered: Path, tmp_path: Path
) -> None:
    from shipml.build.image import prepare

    root = tmp_path / "p"
    shutil.copytree(registered, root, ignore=shutil.ignore_patterns("deploy", "serve"))
    project = load_project(root, env={})
    r = Rollout(project)
    controller = r.controller()
    releases = Releases(StateStore(project.state_url))
    cache = project.state_dir / "serve" / "models" / "rollout"
    try:
        controller.deploy(1)
        controller.promote(2, reason="test")
        history = [(x.id, x.version, x.status) for x in releases.history("rollout")]

        def nothing_released() -> None:
            assert [(x.id, x.version, x.status) for x in releases.history("rollout")] == history
            assert releases.in_progress("rollout") is None and r.champion() == 2
            status = controller.target.status()
            assert status.ready and [(v.name, v.version) for v in status.variants] == [
                ("stable", 2)
            ]

        # the serve cache: version 1, fetched by the first deploy, edited there
        with edited((cache / "1" / "model.skops", b"")):
            with pytest.raises(ModelIntegrityError, match=r"rollout:1 .*changed: model\.skops"):
                controller.rollback()
            with pytest.raises(ModelIntegrityError, match=r"rollout:1 .*changed: model\.skops"):
                controller.promote(1, reason="test")
            out = serve(project, "models:/rollout/1")
            assert out.returncode == 2 and "changed: model.skops" in out.stderr, out.stderr
            nothing_released()
        # the artifact store: version 3, never fetched
        with edited((artifacts(project, 3) / "model.skops", b"")):
            for attempt in (
                lambda: controller.deploy(3),
                lambda: controller.promote(3, reason="test"),
                lambda: prepare(project, None, 3),  # type: ignore[arg-type]  # fails before a builder is needed
            ):
                with pytest.raises(ModelIntegrityError, match=r"rollout:3 .*changed: model\.skops"):
                    attempt()
            out = serve(project, "models:/rollout/3")
            assert out.returncode == 2 and "changed: model.skops" in out.stderr, out.stderr
            assert not (cache / "3").exists()  # a copy that failed the check never lands
            nothing_released()
        # once the artifact is restored, the same version deploys (nothing stale was kept)
        controller.promote(3, reason="restored")
        assert r.champion() == 3
    finally:
        controller.target.stop()


def test_a_version_edited_to_run_code_runs_none_of_it(registered: Path, tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(registered, root, ignore=shutil.ignore_patterns("deploy", "serve"))
    project = load_project(root, env={})
    r = Rollout(project)
    controller = r.controller()
    marker = tmp_path / "marker"
    code = artifacts(project, 4) / "code" / "faults.py"
    hostile_code = (
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n".encode() + code.read_bytes()
    )
    folder = artifacts(project, 5)
    spec = yaml.safe_load((folder / "MLmodel").read_text())
    spec["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"
    try:
        controller.deploy(1)
        changed = r"rollout:4 .*changed: code/faults\.py"
        with edited((code, hostile_code)), pytest.raises(ModelIntegrityError, match=changed):
            controller.deploy(4)
        with (
            edited(
                (folder / "MLmodel", yaml.safe_dump(spec).encode()),
                (folder / "model.skops", pickle.dumps(_OpensMarker(marker))),
            ),
            pytest.raises(ModelIntegrityError, match=r"rollout:5 .*changed: MLmodel, model\.skops"),
        ):
            controller.deploy(5)
        assert [x.version for x in Releases(StateStore(project.state_url)).history("rollout")] == [
            1
        ]
    finally:
        controller.target.stop()
    assert not marker.exists()
