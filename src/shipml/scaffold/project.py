"""`shipml init`: a working project from a CSV, or a CI pipeline for an existing project.

`init_project` reads the data as `shipml ingest` does, detects the target, positive label and
key (detect.py; asks or refuses where the data is ambiguous), writes shipml.yaml (with a
`$schema` line for editors), train.py, tests, .gitignore, the config's JSON Schema and the CI
pipelines, then takes a first snapshot and writes the expectation suite suggested from it.

It never overwrites: when any file it would write exists, it writes nothing unless `force`,
and the result lists what is in the way.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from shipml.config import CONFIG_FILE, Config, load_project
from shipml.errors import UsageError
from shipml.scaffold.ci import CiKind, pipeline_files
from shipml.scaffold.detect import Ask, Detected, detect

__all__ = ["InitResult", "config_schema", "init_ci", "init_project"]

SCHEMA_FILE = "shipml.schema.json"


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)  # in the way: nothing was written
    detected: Detected | None = None
    snapshot: str | None = None
    expectations: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.written)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of shipml.yaml, from the config model."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("title", "shipml.yaml")
    return schema


def init_project(
    root: Path,
    data: Path,
    *,
    target: str | None = None,
    positive_label: str | None = None,
    ci: list[CiKind] | None = None,
    force: bool = False,
    ask: Ask | None = None,
    pip_spec: str | None = None,
) -> InitResult:
    from shipml.data.sources import read_source

    root = root.resolve()
    data = data.resolve()
    if not data.is_file():
        raise UsageError(f"--data {data} is not a file; pass the CSV (or Parquet) to start from")
    inside = data.is_relative_to(root)
    source = data.relative_to(root).as_posix() if inside else f"data/{data.name}"
    frame = read_source(str(data)).frame
    found = detect(frame, target=target, positive_label=positive_label, ask=ask)
    name = _project_name(root)
    planned = {
        CONFIG_FILE: _config_text(name, source, found),
        SCHEMA_FILE: json.dumps(config_schema(), indent=2) + "\n",
        "train.py": _template(
            "train.py.tmpl",
            PROJECT=name,
            SOURCE=source,
            NUMERIC=_pylist(found.numeric),
            CATEGORICAL=_pylist(found.categorical),
        ),
        "tests/conftest.py": _template(
            "conftest.py.tmpl",
            SOURCE_REPR=repr(source),
            TARGET_REPR=repr(found.target),
            POSITIVE_REPR=repr(found.positive_label),
            NOT_INPUTS=repr([found.target, *([found.key] if found.key else []), *found.dropped]),
        ),
        "tests/test_model.py": _template("test_model.py.tmpl"),
        ".gitignore": _template("gitignore.tmpl"),
        **pipeline_files(ci or [], pip_spec=pip_spec),
    }
    suite = f"expectations/{name}.json"
    result = InitResult(root, detected=found)
    result.existing = [p for p in [*planned, suite] if (root / p).exists()]
    if not inside and (root / source).exists() and not _same_file(root / source, data):
        result.existing.append(source)
    if not _write_planned(root, planned, result, force):
        return result
    if not inside:
        (root / "data").mkdir(parents=True, exist_ok=True)
        if not _same_file(root / source, data):
            shutil.copyfile(data, root / source)
        result.written.append(source)
    result.snapshot, result.expectations = _first_snapshot_and_suite(root, suite)
    result.written.append(suite)
    return result


def init_ci(
    root: Path, ci: list[CiKind], *, force: bool = False, pip_spec: str | None = None
) -> InitResult:
    """Add pipeline files to an existing project (`shipml init --only-ci`)."""
    root = root.resolve()
    load_project(root)  # a project, and a valid one, before adding its pipeline
    if not ci:
        raise UsageError("--only-ci needs --ci github, gitlab or both")
    planned = pipeline_files(ci, pip_spec=pip_spec)
    result = InitResult(root)
    result.existing = [p for p in planned if (root / p).exists()]
    _write_planned(root, planned, result, force)
    return result


def _write_planned(root: Path, planned: dict[str, str], result: InitResult, force: bool) -> bool:
    """Write every planned file, or none while `result.existing` lists some and not `force`."""
    if result.existing and not force:
        return False
    result.existing = []
    for rel, text in planned.items():
        _write(root / rel, text)
        result.written.append(rel)
    return True


def _first_snapshot_and_suite(root: Path, suite: str) -> tuple[str, int]:
    from shipml.data.snapshots import SnapshotStore
    from shipml.data.sources import read_source
    from shipml.validate.suggest import suggest_suite, write_suite

    p = load_project(root)
    store = SnapshotStore(p.snapshot_root)
    snap = store.ingest(p.dataset, read_source(str(p.path(p.config.data.source)))).snapshot
    suggested = suggest_suite(
        store.load(snap.dataset, snap.version),
        name=p.name,
        settings=p.config.validation.suggest,
        key=p.config.data.key,
        target=p.config.training.target,
    )
    write_suite(suggested, root / suite)
    return f"{snap.dataset}@{snap.version}", len(suggested.get("expectations", []))


def _config_text(name: str, source: str, found: Detected) -> str:
    why = next((n.split(": ", 1)[1] for n in found.notes if n.startswith("positive")), "")
    drop = [c for c in [found.key, *found.dropped] if c]
    return _template(
        "shipml.yaml.tmpl",
        SCHEMA=f"./{SCHEMA_FILE}",
        PROJECT=name,
        SOURCE=_yaml_scalar(source),
        KEY_LINE=f"  key: {_yaml_scalar(found.key)}\n" if found.key else "",
        TARGET=_yaml_scalar(found.target),
        POSITIVE=_yaml_scalar(found.positive_label),
        LABELS=", ".join(map(str, found.labels)),
        POSITIVE_WHY=why,
        DROP_LINE=f"  drop: [{', '.join(_yaml_scalar(c) for c in drop)}]\n" if drop else "",
    )


def _template(name: str, **values: str) -> str:
    text = files("shipml.scaffold").joinpath("templates", name).read_text()
    return re.sub(r"@@([A-Z_]+)@@", lambda m: values[m.group(1)], text)


def _yaml_scalar(value: Any) -> str:
    """A YAML scalar that reads back as the same value and type (1 stays an int)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("...").strip()


def _pylist(names: list[str]) -> str:
    if not names:
        return "[]"
    return "[\n" + "".join(f"    {n!r},\n" for n in names) + "]"


def _project_name(root: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", root.name).strip("-_")
    return name or "project"


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and a.resolve() == b.resolve()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
