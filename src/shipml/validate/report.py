"""The validation report: one self-contained HTML page per run, readable with no network.

Great Expectations' Data Docs load Bootstrap, jQuery, Font Awesome and Vega from CDNs; opened
offline (a CI artifact, an air-gapped laptop) their pages render without styles or status
icons. This page is written from the same results with inline CSS and no scripts, images or
links to anything outside the file, so it reads the same anywhere. Data Docs are still
built next to it for those who browse them online.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipml.validate._failures import Failure, describe_types

__all__ = ["write_report"]


@dataclass(frozen=True)
class Row:
    ok: bool
    column: str
    check: str
    expected: str
    found: str


def write_report(
    results: Iterable[Any],
    failures: Sequence[Failure],
    *,
    suite: str,
    label: str,
    out: Path,
    data_docs: Path,
) -> Path:
    """Write the page for one run of `suite` on snapshot `label` to `out`; return `out`."""
    by_kind_column = {(f.expectation, f.column): f for f in failures}
    rows = [_row(r, by_kind_column) for r in results]
    rows.sort(key=lambda r: (r.ok, r.column))  # failures first
    failed = sum(not r.ok for r in rows)
    verdict = "PASSED" if not failed else "FAILED"
    table = "\n".join(
        f"<tr class={'ok' if r.ok else 'bad'}><td class=mark>{'✔' if r.ok else '✘'}</td>"
        f"<td>{_e(r.column)}</td><td>{_e(r.check)}</td><td>{_e(r.expected)}</td>"
        f"<td>{_e(r.found)}</td></tr>"
        for r in rows
    )
    page = _PAGE.format(
        title=_e(f"Validation of {label} against suite '{suite}'"),
        verdict=verdict,
        kind="pass" if not failed else "fail",
        summary=_e(f"{len(rows)} expectations, {failed} failed"),
        rows=table,
        docs=_e(str(data_docs)),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _row(result: Any, failures: dict[tuple[str, str | None], Failure]) -> Row:
    config = result.expectation_config
    kind: str = config.type
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id")}
    column = config.kwargs.get("column")
    failure = failures.get((kind, None if column is None else str(column)))
    if result.success:
        found = "as expected"
        observed = (result.result or {}).get("observed_value")
        if observed is not None and not isinstance(observed, list | dict):
            found = f"observed {observed}"
    elif failure is not None:
        found = failure.reason.split(": ", 1)[-1].rsplit(" (", 1)[0]
    else:
        found = "failed"
    return Row(
        ok=bool(result.success),
        column="(table)" if column is None else str(column),
        check=kind.removeprefix("expect_").replace("_", " "),
        expected=_expected(kwargs),
        found=found,
    )


def _expected(kwargs: dict[str, Any]) -> str:
    parts = []
    for key, value in kwargs.items():
        if key == "mostly":
            parts.append(f"in at least {float(value):.1%} of rows")
            continue
        if key == "type_list":
            parts.append(f"type {describe_types(value)}")
            continue
        if isinstance(value, list) and len(value) > 8:
            shown = ", ".join(map(str, value[:8]))
            value = f"[{shown}, … {len(value) - 8} more]"
        parts.append(f"{key}={value}")
    return "; ".join(parts)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
         color: #222; padding: 0 1rem; }}
  .verdict {{ font-size: 1.2rem; font-weight: bold; padding: 0.4rem 0.8rem;
             display: inline-block; border-radius: 4px; }}
  .pass {{ background: #e3f4e3; color: #1b5e20; }}
  .fail {{ background: #fbe3e3; color: #b71c1c; }}
  table {{ border-collapse: collapse; margin: 1rem 0; width: 100%; }}
  th, td {{ border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left;
           vertical-align: top; }}
  th {{ background: #f5f5f5; }}
  td.mark {{ text-align: center; font-weight: bold; }}
  tr.ok td.mark {{ color: #1b5e20; }}
  tr.bad td {{ background: #fff5f5; }}
  tr.bad td.mark {{ color: #b71c1c; }}
  .note {{ color: #555; font-size: 0.9rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p><span class="verdict {kind}">{verdict}</span> {summary}</p>
<table>
<tr><th></th><th>Column</th><th>Check</th><th>Expected</th><th>Found</th></tr>
{rows}
</table>
<p class="note">Great Expectations' Data Docs of this run (they load styles from the
internet): {docs}</p>
</body>
</html>
"""
