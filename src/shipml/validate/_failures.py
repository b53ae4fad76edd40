"""Turn GX expectation results into one readable line each: column, observed vs expected."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Failure", "describe_types", "failures_from"]

_MAX_SAMPLES = 5
_INT_NAMES = {"int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_NAMES = {"float", "float16", "float32", "float64"}
_KIND_ORDER = {  # within one column: root causes first
    "expect_column_to_exist": 0,
    "expect_column_values_to_be_in_type_list": 1,
    "expect_column_values_to_not_be_null": 2,
}


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    reason: str
    samples: list[Any] = field(default_factory=list)
    """Up to five distinct offending values, JSON-ready."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "reason": self.reason,
            "samples": list(self.samples),
        }


def failures_from(
    results: Iterable[Any], *, columns: set[str], suite: str, order: Sequence[Any] = ()
) -> list[Failure]:
    """One Failure per failed expectation, table checks first, then columns in suite `order`.

    A column missing from the data is reported once (by expect_column_to_exist when the suite
    has it), not once per check on that column.
    """
    rank = {c: i for i, c in reversed(list(enumerate(order)))}

    def position(r: Any) -> tuple[int, int, int]:
        column = r.expectation_config.kwargs.get("column")
        kind = _KIND_ORDER.get(r.expectation_config.type, len(_KIND_ORDER))
        return (column is not None, rank.get(column, len(rank)), kind)

    out: list[Failure] = []
    missing_reported: set[str] = set()
    for r in sorted((r for r in results if not r.success), key=position):
        kind: str = r.expectation_config.type
        kwargs: Mapping[str, Any] = r.expectation_config.kwargs
        column = kwargs.get("column")
        column = None if column is None else str(column)
        if column is not None and column not in columns:
            if column not in missing_reported:
                missing_reported.add(column)
                reason = (
                    f"column '{column}' is missing (expected by suite '{suite}'); add it to "
                    f"the source or remove its expectations ({kind})"
                )
                out.append(Failure(kind, column, reason))
            continue
        result: Mapping[str, Any] = r.result or {}
        error = _exception_message(r.exception_info)
        if error is not None:
            reason = f"{_subject(column)}: GX could not evaluate this check: {error} ({kind})"
        else:
            reason = f"{_subject(column)}: {_describe(kind, kwargs, result)}"
            samples = _samples(result)
            if samples and kind != "expect_column_values_to_not_be_null":
                reason += f", e.g. {', '.join(_show(v) for v in samples[:3])}"
            reason += f" ({kind})"
        out.append(Failure(kind, column, reason, _samples(result)))
    return out


def _describe(kind: str, kwargs: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    mostly = float(kwargs.get("mostly", 1.0))
    bad = float(result.get("unexpected_percent") or 0.0) / 100
    allowed = "expected none" if mostly >= 1.0 else f"at most {1 - mostly:.1%} allowed"
    if kind == "expect_column_values_to_not_be_null":
        return f"{bad:.1%} nulls, {allowed}"
    if kind == "expect_column_values_to_be_between":
        lo, hi = _fmt(kwargs.get("min_value")), _fmt(kwargs.get("max_value"))
        return f"{bad:.1%} of values outside [{lo}, {hi}], {allowed}"
    if kind == "expect_column_values_to_be_in_set":
        size = len(kwargs.get("value_set") or [])
        return f"{bad:.1%} of values not in the expected set of {size}, {allowed}"
    if kind == "expect_column_values_to_be_unique":
        return f"{bad:.1%} of values are duplicates, expected unique"
    if kind == "expect_column_values_to_be_in_type_list":
        expected = describe_types(kwargs.get("type_list") or [])
        if "observed_value" in result:
            return f"type {result['observed_value']}, expected {expected}"
        seen = sorted({type(v).__name__ for v in result.get("partial_unexpected_list") or []})
        got = f"of type {', '.join(seen)}" if seen else "of another type"
        return f"{bad:.1%} of values {got}, expected {expected}"
    if kind == "expect_table_columns_to_match_set":
        expected_set = [str(c) for c in kwargs.get("column_set") or []]
        observed = [str(c) for c in result.get("observed_value") or []]
        missing = [c for c in expected_set if c not in observed]
        extra = [c for c in observed if c not in expected_set]
        parts = [f"missing {_names(missing)}"] if missing else []
        parts += [f"unexpected {_names(extra)}"] if extra else []
        return f"columns differ from the suite: {'; '.join(parts) or 'order differs'}"
    if kind == "expect_table_row_count_to_be_between":
        lo, hi = _fmt(kwargs.get("min_value")), _fmt(kwargs.get("max_value"))
        return f"{_fmt(result.get('observed_value'))} rows, expected {lo} to {hi}"
    if "observed_value" in result:
        return f"observed {_fmt(result['observed_value'])}"
    if "unexpected_percent" in result:
        return f"{bad:.1%} of values unexpected, {allowed}"
    return "failed"


def _names(columns: list[str]) -> str:
    return ", ".join(f"'{c}'" for c in columns)


def _subject(column: str | None) -> str:
    return "table" if column is None else f"column '{column}'"


def describe_types(names: Iterable[str]) -> str:
    """A GX type list in words: every int and float name is "a number"."""
    given = set(names)
    if given >= _INT_NAMES | _FLOAT_NAMES:
        rest = given - _INT_NAMES - _FLOAT_NAMES
        return "a number" + (f" or {', '.join(sorted(rest))}" if rest else "")
    if given >= _INT_NAMES:
        rest = given - _INT_NAMES
        return "an integer" + (f" or {', '.join(sorted(rest))}" if rest else "")
    if given == {"str"}:
        return "text (str)"
    if all(n.startswith("datetime64") for n in given) and given:
        return "a datetime"
    return " or ".join(sorted(given)) or "nothing"


def _exception_message(info: Any) -> str | None:
    if not isinstance(info, Mapping) or not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error").splitlines()[0]
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "unknown error").splitlines()[0]
    return None


def _samples(result: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in result.get("partial_unexpected_list") or []:
        plain = _plain(value)
        if plain not in out:
            out.append(plain)
        if len(out) == _MAX_SAMPLES:
            break
    return out


def _plain(value: Any) -> Any:
    """A JSON-ready copy of one value: numpy scalars unwrapped, NaN as None, the rest as text."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _show(value: Any) -> str:
    """One offending value as the user would write it: text quoted, numbers plain."""
    if isinstance(value, str):
        return repr(value)
    return "null" if value is None else _fmt(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
