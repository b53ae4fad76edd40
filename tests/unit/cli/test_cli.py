"""The CLI's contract: exit codes, one-line errors without tracebacks, --json everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from shipml.cli import app


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipml", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def leaf_commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(cmd, path: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            found.append(path)

    walk(get_command(app), ())
    return found


@pytest.mark.parametrize("path", leaf_commands(), ids=" ".join)
def test_every_command_has_json_or_is_a_writer(path: tuple[str, ...]) -> None:
    cmd = get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    names = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
    assert "--json" in names or path in {
        ("config", "reference"),
        ("config", "schema"),
        ("serve",),
    }, path


def test_missing_config_is_exit_2_one_line_no_traceback(tmp_path: Path) -> None:
    out = run("ingest", cwd=tmp_path)
    assert out.returncode == 2
    assert "no shipml.yaml" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_config_error_as_json(tmp_path: Path) -> None:
    (tmp_path / "shipml.yaml").write_text("project: demo\ntraining:\n  tagret: y\n")
    out = run("config", "show", "--json", cwd=tmp_path)
    assert out.returncode == 2
    payload = json.loads(out.stdout)
    assert payload["exit_code"] == 2 and "did you mean 'target'" in payload["error"]


def test_config_show_prints_effective_config(tmp_path: Path) -> None:
    (tmp_path / "shipml.yaml").write_text("project: demo\n")
    out = run("config", "show", "--json", "--project", str(tmp_path))
    assert out.returncode == 0
    payload = json.loads(out.stdout)
    assert payload["config"]["training"]["seed"] == 42
    assert payload["derived"]["state_url"].endswith(".shipml/state.db")


def test_usage_error_is_exit_2() -> None:
    assert run("lineage").returncode == 2  # missing argument
    assert run("no-such-command").returncode == 2


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from shipml.cli import app; "
        "heavy = {'pandas', 'mlflow', 'great_expectations', 'sklearn', 'deltalake', 'pydantic'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version() -> None:
    from shipml import __version__

    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"shipml {__version__}"
