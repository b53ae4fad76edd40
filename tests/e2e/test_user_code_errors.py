"""The user's own code fails clearly: one stage line, their file and line, the exception, the
saved traceback, exit 2 (not 1, which means a gate said no), and no model registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import copy_project, shipml

pytestmark = pytest.mark.slow

BROKEN_FIT = """

def _scale(frame):
    return frame / 0 if frame.empty else frame["no such column"]


def train(data, params):
    return _scale(data)
"""


def test_an_exception_in_train_names_the_users_line_and_exits_2(tmp_path: Path) -> None:
    project = copy_project("cancer", tmp_path)
    (project / "train.py").write_text(BROKEN_FIT)
    assert shipml(project, "ingest").code == 0
    result = shipml(project, "train")
    assert result.code == 2, result.stderr
    line = next(s for s in result.stderr.splitlines() if "raised KeyError" in s)
    assert "train:train(data, params) raised KeyError: 'no such column'" in line
    assert "at train.py:4 in _scale" in line
    saved = Path(line.rsplit("full traceback in ", 1)[1].strip())
    assert saved.is_file() and "Traceback (most recent call last)" in saved.read_text()
    assert "Traceback" not in result.stderr  # one line, not 166
    assert len(result.stderr.strip().splitlines()) <= 12, result.stderr
    assert any(s.startswith("✗ train") for s in result.stderr.splitlines()), result.stderr
    assert shipml(project, "registry", "versions", "--json").json == []


def test_an_exception_at_import_of_the_users_module_is_reported_the_same_way(
    tmp_path: Path,
) -> None:
    project = copy_project("cancer", tmp_path)
    source = (project / "train.py").read_text()
    broken = source.replace(
        "\n\ndef train(", "\nSETTINGS = __import__('json').loads('{')\n\n\ndef train("
    )
    (project / "train.py").write_text(broken)
    line = broken.splitlines().index("SETTINGS = __import__('json').loads('{')") + 1
    assert shipml(project, "ingest").code == 0
    result = shipml(project, "train")
    assert result.code == 2, result.stderr
    assert "importing train.py raised JSONDecodeError" in result.stderr
    assert f"at train.py:{line} in <module>" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_syntax_error_in_the_users_module_names_its_line(tmp_path: Path) -> None:
    project = copy_project("cancer", tmp_path)
    (project / "train.py").write_text("def train(data, params):\n    return (\n")
    assert shipml(project, "ingest").code == 0
    result = shipml(project, "train")
    assert result.code == 2, result.stderr
    assert "importing train.py raised SyntaxError" in result.stderr
    assert "at train.py:2" in result.stderr
