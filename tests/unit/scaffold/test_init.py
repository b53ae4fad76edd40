"""`shipml init` writes a complete project, never overwrites without --force, and asks (or,
with no terminal, refuses with exit 2) where the data is ambiguous."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from shipml.config import load_project
from shipml.scaffold.project import config_schema, init_ci, init_project

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow  # a first snapshot and a suggested suite (Delta Lake, GX)


def _csv(path: Path) -> Path:
    pd.DataFrame(
        {
            "customer_id": range(60),
            "tenure": [i % 12 for i in range(60)],
            "plan": ["basic", "pro", "team"] * 20,
            "churned": ["yes", "no", "no", "no"] * 15,
        }
    ).to_csv(path, index=False)
    return path


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".shipml" not in p.parts}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipml", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,  # no terminal: nothing may be asked
        timeout=300,
    )


def test_init_writes_a_loadable_project(tmp_path: Path) -> None:
    root = tmp_path / "churn"
    result = init_project(root, _csv(tmp_path / "customers.csv"), ci=["github", "gitlab"])

    assert {
        "shipml.yaml",
        "shipml.schema.json",
        "train.py",
        "tests/conftest.py",
        "tests/test_model.py",
        ".gitignore",
        ".github/workflows/shipml.yml",
        ".gitlab-ci.yml",
        "data/customers.csv",
        "expectations/churn.json",
    } == set(result.written)
    p = load_project(root)
    assert p.config.training.target == "churned" and p.config.training.positive_label == "yes"
    assert p.config.data.key == "customer_id" and p.config.training.drop == ["customer_id"]
    text = (root / "shipml.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=./shipml.schema.json\n")
    schema = json.loads((root / "shipml.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(text), schema)
    assert ".shipml/" in (root / ".gitignore").read_text().splitlines()
    suite = json.loads((root / "expectations" / "churn.json").read_text())
    assert len(suite["expectations"]) > 5
    assert result.snapshot == "churn@0"
    train = (root / "train.py").read_text()
    assert "NUMERIC: list[str] = [\n    'tenure',\n]" in train and "'plan'" in train


def test_rerunning_init_changes_nothing_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "churn"
    data = _csv(tmp_path / "customers.csv")
    init_project(root, data)
    before = _files(root)
    (root / "train.py").write_text("# my own model\n")
    before[root / "train.py"] = b"# my own model\n"

    out = _cli("init", str(root), "--data", str(data))
    assert out.returncode == 0, out.stderr
    assert "nothing changed" in out.stdout and "--force" in out.stdout
    assert _files(root) == before

    forced = init_project(root, data, force=True)
    assert "train.py" in forced.written
    assert (root / "train.py").read_text() != "# my own model\n"


def test_ambiguous_data_without_a_terminal_is_exit_2_naming_candidates_and_flag(
    tmp_path: Path,
) -> None:
    data = tmp_path / "people.csv"
    pd.DataFrame({"smoker": ["y", "n"] * 5, "sex": ["f", "m", "m", "f", "m"] * 2}).to_csv(
        data, index=False
    )
    out = _cli("init", str(tmp_path / "p"), "--data", str(data))
    assert out.returncode == 2
    assert "'smoker', 'sex'" in out.stderr and "--target" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "p" / "shipml.yaml").exists()

    out = _cli("init", str(tmp_path / "p"), "--data", str(data), "--target", "sex")
    assert out.returncode == 2 and "--positive-label" in out.stderr
    out = _cli(
        "init", str(tmp_path / "p"), "--data", str(data), "--target", "sex",
        "--positive-label", "f", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["positive_label"] == "f"


def test_only_ci_adds_a_pipeline_to_an_existing_project(tmp_path: Path) -> None:
    root = tmp_path / "churn"
    init_project(root, _csv(tmp_path / "customers.csv"))
    assert not (root / ".github").exists()

    out = _cli("init", str(root), "--ci", "github", "--only-ci")
    assert out.returncode == 0, out.stderr
    assert (root / ".github" / "workflows" / "shipml.yml").exists()
    assert not (root / ".gitlab-ci.yml").exists()
    again = init_ci(root, ["github"])
    assert not again.changed and again.existing == [".github/workflows/shipml.yml"]


def test_only_ci_needs_a_project(tmp_path: Path) -> None:
    out = _cli("init", str(tmp_path), "--ci", "gitlab", "--only-ci")
    assert out.returncode == 2 and "no shipml.yaml" in out.stderr


def test_config_schema_is_the_config_model_and_accepts_the_example() -> None:
    out = _cli("config", "schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert schema == json.loads(json.dumps(config_schema()))
    example = yaml.safe_load((REPO / "examples" / "credit" / "shipml.yaml").read_text())
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "trainig": {}}, schema)  # a misspelt section
