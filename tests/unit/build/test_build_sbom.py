"""The SBOM is valid CycloneDX 1.6 (checked with the CycloneDX schema), complete, stable."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from shipml.build.sbom import environment_sbom


def validate(doc: dict) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    assert error is None, error


@pytest.fixture(scope="module")
def requirements() -> str:
    version = metadata.version("numpy")
    return f"numpy=={version} --hash=sha256:{'a' * 64}\n"


def test_the_environment_sbom_is_valid_cyclonedx(requirements: str) -> None:
    doc = environment_sbom("credit", "3", requirements, tool_version="0.1.0")
    validate(doc)
    assert doc["metadata"]["component"]["name"] == "credit"
    refs = {c["bom-ref"] for c in doc["components"]}
    assert all(dep["ref"] in refs and set(dep["dependsOn"]) <= refs for dep in doc["dependencies"])


def test_it_lists_every_installed_distribution_with_purl(requirements: str) -> None:
    doc = environment_sbom("credit", "3", requirements)
    libraries = {c["name"].lower(): c for c in doc["components"] if c["type"] == "library"}
    installed = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert set(libraries) == installed
    numpy = libraries["numpy"]
    assert numpy["purl"] == f"pkg:pypi/numpy@{metadata.version('numpy')}"
    assert numpy["hashes"] == [{"alg": "SHA-256", "content": "a" * 64}]
    pandas = doc["dependencies"][[c["name"].lower() for c in doc["components"][1:]].index("pandas")]
    assert f"pkg:pypi/numpy@{metadata.version('numpy')}" in pandas["dependsOn"]


def test_equal_environments_give_equal_documents(requirements: str) -> None:
    a = environment_sbom("credit", "3", requirements)
    assert a == environment_sbom("credit", "3", requirements)
    assert a["serialNumber"] != environment_sbom("credit", "4", requirements)["serialNumber"]
    assert "timestamp" not in a["metadata"]


def test_the_validator_rejects_a_broken_document(requirements: str) -> None:
    doc = environment_sbom("credit", "3", requirements)
    doc["components"][1]["type"] = "wheel"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is not None


def test_module_runs_with_the_standard_library_only(tmp_path: Path, requirements: str) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(requirements)
    code = (
        "import sys, runpy; sys.modules['yaml'] = None; sys.modules['pydantic'] = None;"
        f"sys.argv = ['sbom', {str(req)!r}];"
        "runpy.run_module('shipml.build.sbom', run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"SHIPML_SBOM_NAME": "credit", "SHIPML_SBOM_VERSION": "7", "SOURCE_DATE_EPOCH": "0"},
        check=True,
    )
    doc = json.loads(out.stdout)
    validate(doc)
    assert doc["metadata"]["component"]["version"] == "7"
    assert doc["metadata"]["timestamp"] == "1970-01-01T00:00:00Z"
