"""Profile a reference snapshot into a Great Expectations 1.x suite the user reviews and commits.

Every suggested expectation carries `notes` (how it was derived, in one sentence) and
`meta.shipml.rule` (which rule made it), so a reviewer can tell generated checks from
hand-written ones and a later re-suggest can find them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipml._hashing import sha256_frame
from shipml.config import SuggestConfig
from shipml.errors import ConfigError, UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["suggest_suite", "write_suite"]

_INTS = ["int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
_FLOATS = ["float", "float16", "float32", "float64"]
_DATETIMES = ["datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]"]


def suggest_suite(
    frame: pd.DataFrame,
    *,
    name: str,
    settings: SuggestConfig,
    key: str | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """Profile `frame` into a suite, returned as GX's own suite JSON.

    GX loads the result back with `ExpectationSuite(**suite)`; `write_suite` stores it.
    """
    if len(frame) == 0:
        raise UsageError(
            f"cannot suggest suite '{name}' from an empty reference snapshot (0 rows); "
            "pick a snapshot that has rows"
        )
    for role, column in (("data.key", key), ("training.target", target)):
        if column is not None and column not in frame.columns:
            raise ConfigError(
                f"{role} column '{column}' is not in the reference snapshot "
                f"(columns: {', '.join(map(str, frame.columns))}); fix {role} in shipml.yaml"
            )
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # before GX is first imported
    from great_expectations.core import ExpectationSuite

    meta = {
        "shipml": {
            "reference_rows": len(frame),
            "reference_sha256": sha256_frame(frame),
            "settings": settings.model_dump(),
        }
    }
    expectations = _table_expectations(frame, settings)
    for column in frame.columns:
        expectations += _column_expectations(frame[column], str(column), settings, key, target)
    if key is not None:
        expectations.append(_unique(key))
    # Passed to the constructor: add_expectation() would need a live data context.
    suite = ExpectationSuite(name=name, expectations=expectations, meta=meta)
    return suite.to_json_dict()


def write_suite(suite: dict[str, Any], path: Path) -> None:
    """Write the suite as pretty, key-sorted JSON: the same suite always gives the same bytes."""
    text = json.dumps(suite, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def _table_expectations(frame: pd.DataFrame, settings: SuggestConfig) -> list[Any]:
    import great_expectations.expectations as gxe

    rows, m = len(frame), settings.row_count_margin
    columns = [str(c) for c in frame.columns]
    return [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=columns,
            exact_match=True,
            notes=f"The reference snapshot's {len(columns)} columns, no more and no fewer.",
            meta=_rule("columns"),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=math.floor(rows * (1 - m)),
            max_value=math.ceil(rows * (1 + m)),
            notes=f"Reference had {rows} rows; bounds are {rows} x (1 -/+ row_count_margin {m}).",
            meta=_rule("row_count"),
        ),
    ]


def _column_expectations(
    series: pd.Series, column: str, settings: SuggestConfig, key: str | None, target: str | None
) -> list[Any]:
    import great_expectations.expectations as gxe

    out: list[Any] = [
        gxe.ExpectColumnToExist(
            column=column, notes="Present in the reference snapshot.", meta=_rule("exists")
        )
    ]
    types = _type_list(series)
    if types is not None:
        out.append(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=column,
                type_list=types,
                notes=f"Reference dtype is {series.dtype}; the listed types are accepted.",
                meta=_rule("type"),
            )
        )
    out += _not_null(series, column, settings)
    values = series.dropna()
    if values.empty or column == key:  # a key's values are new each snapshot: unique only
        return out
    dtype = series.dtype
    import pandas as pd

    is_number = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    distinct = values.unique()
    if column == target or (
        not is_number
        and not pd.api.types.is_datetime64_any_dtype(dtype)
        and len(distinct) <= settings.max_categories
    ):
        why = "label column" if column == target else f"max_categories {settings.max_categories}"
        out.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=column,
                value_set=_sorted_values(distinct),
                notes=f"All {len(distinct)} values seen in the reference snapshot ({why}).",
                meta=_rule("value_set"),
            )
        )
    elif is_number:
        out += _range(values, column, settings)
    return out


def _not_null(series: pd.Series, column: str, settings: SuggestConfig) -> list[Any]:
    import great_expectations.expectations as gxe

    nulls = float(series.isna().mean())
    if nulls == 0.0:
        return [
            gxe.ExpectColumnValuesToNotBeNull(
                column=column,
                mostly=1.0,
                notes="No nulls in the reference snapshot.",
                meta=_rule("not_null"),
            )
        ]
    allowed = min(1.0, nulls * (1 + settings.margin) + settings.outlier_tolerance)
    if allowed >= 1.0:
        return []  # (nearly) all null in the reference: nothing to require
    return [
        gxe.ExpectColumnValuesToNotBeNull(
            column=column,
            mostly=math.floor((1 - allowed) * 10_000) / 10_000,
            notes=f"Reference had {nulls:.1%} nulls; up to {allowed:.1%} allowed "
            f"(x (1 + margin {settings.margin}) + outlier_tolerance "
            f"{settings.outlier_tolerance}).",
            meta=_rule("null_fraction"),
        )
    ]


def _range(values: pd.Series, column: str, settings: SuggestConfig) -> list[Any]:
    import great_expectations.expectations as gxe
    import pandas as pd

    q = settings.quantile
    low, high = (float(v) for v in values.quantile([q, 1 - q], interpolation="linear"))
    span = high - low or abs(low) or 1.0
    integer = pd.api.types.is_integer_dtype(values.dtype)
    lo, hi = low - settings.margin * span, high + settings.margin * span
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []  # infinities or overflow: no range a reviewer could read
    lo, hi = _round_out(lo, up=False, integer=integer), _round_out(hi, up=True, integer=integer)
    inside = float(values.between(lo, hi).mean())
    mostly = min(1 - settings.outlier_tolerance, math.floor(inside * 10_000) / 10_000)
    notes = (
        f"Reference quantiles {q:g}..{1 - q:g} are {low:.6g}..{high:.6g}, widened by margin "
        f"{settings.margin} of the span; up to {1 - mostly:.1%} of rows may fall outside"
    )
    if inside < 1 - settings.outlier_tolerance:  # never reject the reference itself
        notes += f" (the reference itself has {1 - inside:.1%} outside)"
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            min_value=lo,
            max_value=hi,
            mostly=round(mostly, 10),
            notes=notes + ".",
            meta=_rule("range"),
        )
    ]


def _unique(key: str) -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeUnique(
        column=key, notes="Key column (data.key): every value is unique.", meta=_rule("unique")
    )


def _type_list(series: pd.Series) -> list[str] | None:
    """Type names GX's pandas check accepts; `run` hands extension dtypes to GX as objects."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return ["bool"]
    if pd.api.types.is_integer_dtype(dtype):
        return list(_INTS)
    if pd.api.types.is_float_dtype(dtype):
        return _INTS + _FLOATS
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return list(_DATETIMES)
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
        kind = pd.api.types.infer_dtype(series.astype(object), skipna=True)
        return {"string": ["str"], "boolean": ["bool"], "integer": list(_INTS)}.get(kind)
    if pd.api.types.is_string_dtype(dtype):
        return ["str"]
    return [str(dtype)]


def _sorted_values(values: Any) -> list[Any]:
    plain = [v.item() if hasattr(v, "item") else v for v in values]
    return sorted(plain, key=lambda v: (type(v).__name__, v))


def _round_out(x: float, *, up: bool, integer: bool) -> float | int:
    """Round a bound outward to 6 significant digits (integers to whole numbers)."""
    if integer:
        return math.ceil(x) if up else math.floor(x)
    if x == 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(abs(x))) - 5)
    if step == 0.0 or not math.isfinite(step):
        return x
    r = float(f"{(math.ceil(x / step) if up else math.floor(x / step)) * step:.6g}")
    return r if math.isfinite(r) and (r >= x if up else r <= x) else x


def _rule(rule: str) -> dict[str, Any]:
    return {"shipml": {"rule": rule}}
