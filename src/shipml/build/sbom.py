"""A CycloneDX 1.6 SBOM of a Python environment, made inside the image it describes.

The Dockerfile runs `python -m shipml.build.sbom requirements.txt` with the image's own
interpreter right after installing the serving environment, so the SBOM lists what the image
really holds (read with `importlib.metadata`), not what the host thinks it installed. Each
component carries its PyPI package URL, its licence as declared, the sha256 of the wheel it
was installed from (from requirements.txt), and the installed packages it depends on.

Standard library only: it runs before anything else could be trusted to be importable.
Deterministic: no timestamp (unless SOURCE_DATE_EPOCH is set), sorted components, and a
serial number derived from the content, so equal environments give equal documents.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["SPEC_VERSION", "environment_sbom"]

SPEC_VERSION = "1.6"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _purl(name: str, version: str) -> str:
    return f"pkg:pypi/{_canonical(name)}@{version}"


def _licenses(meta: Any) -> list[dict[str, Any]]:
    expression = meta.get("License-Expression")
    if expression:
        return [{"expression": expression.strip()}]
    names = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::") and c.count("::") >= 2
    ]
    text = (meta.get("License") or "").strip()
    if not names and text and "\n" not in text and len(text) <= 100:
        names = [text]
    return [{"license": {"name": n}} for n in sorted(set(names))]


def _wheel_hashes(requirements: str) -> dict[str, str]:
    """{canonical name: sha256 hex} from `NAME==VERSION --hash=sha256:HEX` lines."""
    found = {}
    for line in requirements.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9._-]+)==\S+.*--hash=sha256:([0-9a-f]{64})", line)
        if match:
            found[_canonical(match[1])] = match[2]
    return found


def environment_sbom(
    name: str, version: str, requirements: str = "", *, tool_version: str = ""
) -> dict[str, Any]:
    """The running interpreter's installed distributions as a CycloneDX document."""
    hashes = _wheel_hashes(requirements)
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        dist_name = dist.metadata.get("Name")  # type: ignore[attr-defined]
        if dist_name:
            dists.setdefault(_canonical(dist_name), dist)
    components, dependencies = [], []
    for key in sorted(dists):
        dist = dists[key]
        meta: Any = dist.metadata  # email.message.Message: .get() is None when absent
        ref = _purl(meta["Name"], dist.version)
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": meta["Name"],
            "version": dist.version,
            "purl": ref,
        }
        if meta.get("Summary"):
            component["description"] = meta["Summary"].strip()
        licenses = _licenses(meta)
        if licenses:
            component["licenses"] = licenses
        if key in hashes:
            component["hashes"] = [{"alg": "SHA-256", "content": hashes[key]}]
        components.append(component)
        needs = set()
        for req in dist.requires or []:
            if "extra" in req.partition(";")[2]:
                continue  # needed only with an extra
            match = re.match(r"^\s*([A-Za-z0-9._-]+)", req)
            if match and _canonical(match[1]) in dists:
                dep = dists[_canonical(match[1])]
                needs.add(_purl(dep.metadata["Name"], dep.version))
        dependencies.append({"ref": ref, "dependsOn": sorted(needs)})
    python = {
        "type": "platform",
        "bom-ref": f"python@{platform.python_version()}",
        "name": platform.python_implementation().lower(),
        "version": platform.python_version(),
    }
    body: dict[str, Any] = {
        "metadata": {
            "tools": {
                "components": [{"type": "application", "name": "shipml", "version": tool_version}]
            },
            "component": {
                "type": "application",
                "bom-ref": f"image:{name}@{version}",
                "name": name,
                "version": version,
                "description": "shipml serving image: the model and its Python environment",
            },
        },
        "components": [python, *components],
        "dependencies": dependencies,
    }
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        stamp = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["metadata"]["timestamp"] = stamp
    serial = uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(body, sort_keys=True))
    return {
        "$schema": f"http://cyclonedx.org/schema/bom-{SPEC_VERSION}.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        **body,
    }


def main(argv: list[str]) -> int:
    requirements = Path(argv[0]).read_text() if argv else ""
    try:
        tool_version = metadata.version("shipml")
    except metadata.PackageNotFoundError:
        tool_version = "unknown"
    doc = environment_sbom(
        os.environ.get("SHIPML_SBOM_NAME", "shipml-image"),
        os.environ.get("SHIPML_SBOM_VERSION", "unknown"),
        requirements,
        tool_version=tool_version,
    )
    sys.stdout.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
