"""Run a suite file on a DataFrame with Great Expectations 1.x and build Data Docs.

One in-memory GX context per call. Everything GX writes goes under `docs_dir`: the HTML site
(`index.html`, `validations/`, `expectations/`, `static/`) and the validation results it is
rendered from (`_results/`), which keeps earlier runs listed in the index. The report a run
points at is shipml's own self-contained page (`runs/`, `report.py`): Data Docs load their
styles and scripts from CDNs and render blank offline.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipml.errors import ConfigError
from shipml.validate._failures import Failure, failures_from
from shipml.validate.report import write_report

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Failure", "ValidationReport", "validate"]

_SITE = "shipml"
_INDEX_LIMIT = 50  # validation runs listed in index.html; older pages stay on disk


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    suite: str
    label: str
    evaluated: int
    failures: list[Failure]
    docs_path: Path
    gx_seconds: float
    """Wall time inside GX's own validation run and Data Docs build."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "suite": self.suite,
            "label": self.label,
            "evaluated": self.evaluated,
            "failures": [f.to_dict() for f in self.failures],
            "docs_path": str(self.docs_path),
            "gx_seconds": self.gx_seconds,
        }


def validate(
    frame: pd.DataFrame, suite_path: Path, *, docs_dir: Path, label: str
) -> ValidationReport:
    """Validate `frame` against the suite file; failed expectations are reported, never raised."""
    raw = _read_suite(suite_path)  # before importing GX: a missing file fails fast
    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    suite = _load_suite(raw, suite_path)
    docs_dir = docs_dir.resolve()
    context = gx.get_context(project_config=_context_config(docs_dir), mode="ephemeral")
    suite = context.suites.add(suite)
    batch = (
        context.data_sources.add_pandas("shipml")
        .add_dataframe_asset("snapshot")
        .add_batch_definition_whole_dataframe("whole")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
    )
    data = _for_gx(frame)
    run_id = RunIdentifier(run_name=label)

    started = time.perf_counter()
    result = definition.run(
        batch_parameters={"dataframe": data},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
        run_id=run_id,
    )
    # Render only this run's page and the suite's page; the index lists earlier runs too.
    keys: list[Any] = [ExpectationSuiteIdentifier(name=suite.name)]
    keys += [
        key
        for key in context.validation_results_store.list_keys()
        if key.run_id.to_tuple() == run_id.to_tuple()
    ]
    context.build_data_docs(site_names=[_SITE], resource_identifiers=keys)
    gx_seconds = time.perf_counter() - started

    order = [e.configuration.kwargs.get("column") for e in suite.expectations]
    failures = failures_from(
        result.results, columns=set(data.columns), suite=suite.name, order=order
    )
    page = write_report(
        result.results,
        failures,
        suite=suite.name,
        label=label,
        out=docs_dir / "runs" / f"{_slug(label)}-{run_id.run_time:%Y%m%dT%H%M%S%f}.html",
        data_docs=docs_dir / "index.html",
    )
    return ValidationReport(
        success=bool(result.success),
        suite=suite.name,
        label=label,
        evaluated=len(result.results),
        failures=failures,
        docs_path=page,
        gx_seconds=gx_seconds,
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _read_suite(suite_path: Path) -> dict[str, Any]:
    import json

    if not suite_path.is_file():
        raise ConfigError(
            f"expectation suite {suite_path} does not exist; run `shipml expectations suggest` "
            "to create it from a reference snapshot, or fix validation.suite in shipml.yaml"
        )
    try:
        raw = json.loads(suite_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"expectation suite {suite_path} is not valid JSON: {exc}") from None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("name"), str)
        or not isinstance(raw.get("expectations", []), list)
    ):
        raise ConfigError(
            f"expectation suite {suite_path} is not a Great Expectations suite (expected a JSON "
            "object with a 'name' and a list of 'expectations'); regenerate it with "
            "`shipml expectations suggest`"
        )
    return raw


def _load_suite(raw: dict[str, Any], suite_path: Path) -> Any:
    """Build GX's ExpectationSuite; an entry GX rejects is a ConfigError naming it."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = []
    for i, item in enumerate(raw.get("expectations", [])):
        # GX's suite constructor logs and drops an invalid expectation; refuse it instead.
        kind = item.get("type") if isinstance(item, dict) else None
        try:
            expectations.append(ExpectationConfiguration(**item).to_domain_obj())
        except Exception as exc:  # GX raises many unrelated types for a bad entry
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"expectation suite {suite_path}: expectation #{i + 1} ({kind or 'no type'}) "
                f"is not valid: {first}; fix or delete it"
            ) from None
    try:
        return ExpectationSuite(**{**raw, "expectations": expectations})
    except Exception as exc:
        raise ConfigError(f"expectation suite {suite_path} cannot be loaded: {exc}") from None


def _import_gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations

    return great_expectations


def _context_config(docs_dir: Path) -> Any:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults()
    defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": str(docs_dir / "_results"),
    }
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir),
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "validation_results_limit": _INDEX_LIMIT,
        },
        "site_section_builders": {"profiling": "None"},
    }
    return DataContextConfig(
        store_backend_defaults=defaults,
        data_docs_sites={_SITE: site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )


def _for_gx(frame: pd.DataFrame) -> pd.DataFrame:
    """Hand GX columns it can type-check: its pandas type check knows no extension dtype
    (pandas 3 `str`, `Int64`, `boolean`, `category`), so those go in as Python objects, and
    tz-aware timestamps as UTC."""
    import pandas as pd

    converted: dict[str, Any] = {}
    for name, series in frame.items():
        dtype = series.dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            converted[str(name)] = series.dt.tz_convert(None)
        elif isinstance(dtype, pd.api.extensions.ExtensionDtype):
            converted[str(name)] = series.astype(object)
    if not converted and all(isinstance(c, str) for c in frame.columns):
        return frame
    data = frame.rename(columns=str)
    return data.assign(**converted) if converted else data
