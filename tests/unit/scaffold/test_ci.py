"""The generated pipelines are valid for their platforms: the platforms' JSON Schemas (as
check-jsonschema ships them) and actionlint. That they also run is tests/e2e/test_ci_pipelines.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from shipml.scaffold.ci import CI_FILES, default_pip_spec, pipeline_files, render
from tests._services.ci_tools import tool

SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}


def _write(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for rel, text in pipeline_files(["github", "gitlab"]).items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out[rel] = path
    return out


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_pipeline_validates_against_the_platform_schema(tmp_path: Path, kind: str) -> None:
    path = _write(tmp_path)[CI_FILES[kind]]  # type: ignore[index]
    out = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", SCHEMAS[kind], str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_github_workflow_passes_actionlint(tmp_path: Path) -> None:
    _write(tmp_path)
    out = subprocess.run(
        [tool("actionlint"), "-no-color", ".github/workflows/shipml.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_github_jobs_map_the_stages_and_remote_actions_are_skippable_under_act() -> None:
    workflow = yaml.safe_load(render("github"))
    jobs = workflow["jobs"]
    assert list(jobs) == ["validate", "test", "train", "deploy"]
    assert jobs["test"]["needs"] == "validate" and jobs["deploy"]["needs"] == "train"
    assert "default_branch" in jobs["train"]["if"] and "default_branch" in jobs["deploy"]["if"]
    assert jobs["deploy"]["environment"] == "production"
    for job in jobs.values():
        for step in job["steps"]:
            uses = step.get("uses", "")
            if uses and not uses.startswith("actions/checkout@"):
                assert "!env.ACT" in step["if"], step  # act cannot fetch remote actions here
            if "run" in step and "shipml" in step["run"]:
                assert "${{" not in step["run"]  # expressions go through env, not into scripts
    pins = {s["uses"] for j in jobs.values() for s in j["steps"] if "uses" in s}
    assert {"actions/checkout@v5", "actions/setup-python@v6"} <= pins
    assert default_pip_spec() in workflow["env"]["SHIPML_PIP_SPEC"]


def test_gitlab_jobs_map_the_stages_with_junit_and_a_manual_protected_deploy() -> None:
    pipeline = yaml.safe_load(render("gitlab"))
    assert pipeline["stages"] == ["validate", "test", "train", "deploy"]
    assert pipeline["test"]["artifacts"]["reports"]["junit"] == ".shipml/reports/junit.xml"
    assert pipeline["deploy"]["rules"][0]["when"] == "manual"
    assert pipeline["deploy"]["environment"]["name"] == "production"
    assert "$CI_DEFAULT_BRANCH" in pipeline["train"]["rules"][0]["if"]
    assert ".cache/pip/" in pipeline["default"]["cache"]["paths"]
    assert pipeline["variables"]["SHIPML_PIP_SPEC"] == default_pip_spec()


def test_a_gate_failure_and_an_error_are_told_apart() -> None:
    for kind in ("github", "gitlab"):
        text = render(kind)  # type: ignore[arg-type]
        assert "a gate said no (exit 1)" in text and "an error" in text
        assert 'exit "$code"' in text
