"""The value layer under `inputs`: JSON bytes to Python values, rows to columns, columns to
numpy arrays; every failure an `InputError`.

Every column takes a vectorised fast path when its values are all of the expected JSON type
(one `set(map(type, ...))` and one `numpy.array` call). Anything else (missing values,
integral floats in an integer column, or a bad value) goes through `_scan`, which walks the
values in row order and reports the first bad one, and then `_build`.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Literal, cast

import numpy as np
import orjson
from numpy.typing import NDArray

ColumnType = Literal["double", "float", "long", "integer", "boolean", "string"]
COLUMN_TYPES: tuple[ColumnType, ...] = ("double", "float", "long", "integer", "boolean", "string")


class InputError(Exception):
    """A request the server cannot accept: answered with `status` and `to_dict()` as the body.

    `status` is 400 (malformed), 413 (too large), 415 (wrong content type) or 422 (invalid
    content); `code` is stable for clients to branch on; `field` names the column, if any.
    Codes raised here: malformed_json, unsupported_format, missing_column, unexpected_column,
    wrong_type, missing_value, non_finite, integer_out_of_range, empty_batch, too_many_rows,
    body_too_large, unsupported_media_type, ragged_input.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


Columns = dict[str, Sequence[object]]  # request column name -> its values, in row order


class Overflow:
    """A JSON number too large for a float64, kept as its literal text to name it in the error."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_INT = frozenset({int})
_NUMBER = frozenset({int, float})
_BOOL = frozenset({bool})
_STR = frozenset({str})
_FAST: dict[str, frozenset[type]] = {
    "double": _NUMBER,
    "float": _NUMBER,
    "long": _INT,
    "integer": _INT,
    "boolean": _BOOL,
    "string": _STR,
}
_LIMIT = {"double": float(np.finfo(np.float64).max), "float": float(np.finfo(np.float32).max)}
_RANGE = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
_BOUNDS = {"float": (-_LIMIT["float"], _LIMIT["float"]), "integer": _RANGE["integer"]}
_EXACT = 2**53  # largest magnitude a float64 holds every integer up to
_DTYPE: dict[str, type[Any]] = {
    "double": np.float64,
    "float": np.float64,
    "long": np.int64,
    "integer": np.int64,
    "boolean": np.bool_,
    "string": np.object_,
}


def to_array(
    name: str, kind: ColumnType, values: Sequence[object], allow_missing: bool
) -> NDArray[Any]:
    """The column as float64, int64, bool or object array; see `inputs.Batch` for the rules.

    `values` come from `load_json`, so every float is finite (a number beyond float64 is an
    `Overflow`) and every int fits in 64 bits: a double column needs no range check.
    """
    if set(map(type, values)) <= _FAST[kind]:
        try:
            array = np.array(values, dtype=_DTYPE[kind])
        except OverflowError:  # an int beyond int64: _scan names it
            pass
        else:
            bounds = _BOUNDS.get(kind)
            if bounds is None or _within(values, array, *bounds):
                return array
    _scan(name, kind, values, allow_missing)
    return _build(name, kind, values)


def missing_column(kind: ColumnType, rows: int) -> NDArray[Any]:
    """An optional column the request left out: all missing, typed as `to_array` would."""
    if kind in ("boolean", "string"):
        return np.full(rows, None, dtype=object)
    return np.full(rows, np.nan)


def _within(values: Sequence[Any], array: NDArray[Any], low: float, high: float) -> bool:
    if len(values) <= 32:  # numpy's reductions cost microseconds even on one value
        return bool(low <= min(values) and max(values) <= high)
    return bool(array.min() >= low and array.max() <= high)


def _scan(name: str, kind: ColumnType, values: Sequence[object], allow_missing: bool) -> None:
    for row, value in enumerate(values):
        if value is None:
            if not allow_missing:
                raise InputError(
                    422,
                    "missing_value",
                    f"column {name!r} is null or absent in row {row}, and this server rejects "
                    "missing values (serve.missing_values: reject); send a value in every row",
                    name,
                )
            continue
        problem = _check(kind, value)
        if problem is not None:
            code, fix = problem
            raise InputError(
                422, code, f"column {name!r} ({kind}) row {row}: got {_show(value)}; {fix}", name
            )


def _check(kind: ColumnType, value: object) -> tuple[str, str] | None:
    """What is wrong with one non-null value for a column of `kind`, if anything."""
    if kind == "string":
        return None if isinstance(value, str) else ("wrong_type", _FIX["string"])
    if kind == "boolean":
        return None if isinstance(value, bool) else ("wrong_type", _FIX["boolean"])
    if isinstance(value, bool) or not isinstance(value, (int, float, Overflow)):
        return "wrong_type", _FIX[kind]
    if kind in ("double", "float"):
        if isinstance(value, Overflow) or not abs(value) <= _LIMIT[kind]:
            bound = "a float64" if kind == "double" else "a float32 (about ±3.4e38)"
            return "non_finite", f"it is too large for {bound}; send a finite number"
        return None
    low, high = _RANGE[kind]
    if isinstance(value, float):
        if not value.is_integer():
            return "wrong_type", "send a whole number such as 3 (round it on the client)"
        if abs(value) > _EXACT:
            return "integer_out_of_range", (
                "beyond ±2**53 a number with a decimal point or exponent is not exact; "
                "write it as a plain integer"
            )
    if isinstance(value, Overflow):
        return "non_finite", "it is too large for any number type; send a whole number"
    if not low <= value <= high:
        return "integer_out_of_range", f"send a whole number between {low} and {high}"
    return None


_FIX = {
    "double": "send a JSON number, without quotes",
    "float": "send a JSON number, without quotes",
    "long": "send a whole JSON number such as 3, without quotes",
    "integer": "send a whole JSON number such as 3, without quotes",
    "boolean": "send true or false",
    "string": 'send a JSON string; quote numbers, e.g. "36"',
}


def _build(name: str, kind: ColumnType, values: Sequence[object]) -> NDArray[Any]:
    """The array for values `_scan` accepted: all valid, some perhaps None."""
    if kind in ("double", "float"):
        return np.array(values, dtype=np.float64)
    if kind in ("boolean", "string"):
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array if None in values or kind == "string" else array.astype(np.bool_)
    numbers = cast("Sequence[float | None]", values)
    if None not in numbers:
        return np.array([int(cast(float, v)) for v in numbers], dtype=np.int64)
    for row, value in enumerate(numbers):  # int64 cannot hold missing: float64 must be exact
        if value is not None and abs(value) > _EXACT:
            raise InputError(
                422,
                "integer_out_of_range",
                f"column {name!r} ({kind}) row {row}: got {_show(value)}; this column has "
                "missing values, so it reaches the model as float64, which holds integers "
                "exactly only within ±2**53; send a smaller number or no missing values",
                name,
            )
    return np.array(numbers, dtype=np.float64)


def _show(value: object) -> str:
    """The value as the client wrote it (roughly), and its JSON type, for an error message."""
    if isinstance(value, Overflow):
        return f"{value.text[:40]} (a number)"
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    what = kind.get(type(value)) or ("a list" if isinstance(value, list) else "an object")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, dict)):
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # an Overflow inside
            text = repr(value)
    else:
        text = repr(value)
    if isinstance(value, str):
        text = '"' + value[:40].replace('"', '\\"') + ('..."' if len(value) > 40 else '"')
    elif len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({what})"


def transpose(rows: list[Any], names: Sequence[str], where: str, positional: bool) -> Columns:
    width = len(names)
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
        row, bad = next(
            (i, r) for i, r in enumerate(rows) if type(r) is not list or len(r) != width
        )
        if not isinstance(bad, list):
            raise unsupported(f"{where}[{row}] is {what(bad)}; every row must be a list of values")
        order = f", in signature order: {list(names)}" if positional else ""
        raise InputError(
            422,
            "ragged_input",
            f"{where}[{row}] has {len(bad)} values but every row needs {width}{order}",
        )
    return dict(zip(names, zip(*rows, strict=False), strict=False))  # widths checked above


def records(
    records: object, key: str, names: tuple[str, ...], max_rows: int
) -> tuple[Columns, int]:
    if not isinstance(records, list):
        raise unsupported(f'"{key}" must be a list of records [{{column: value}}, ...]')
    check_rows(len(records), max_rows)
    getter = itemgetter(*names)
    try:  # fast path: every record holds exactly the schema's columns
        values = list(map(getter, records))
    except (KeyError, TypeError):
        values = None
    if values is not None and set(map(len, records)) == {len(names)}:
        if len(names) == 1:
            return {names[0]: values}, len(records)
        return dict(zip(names, zip(*values, strict=False), strict=False)), len(records)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise unsupported(f"{key}[{i}] is {what(record)}; every record must be an object")
    present: dict[str, None] = dict.fromkeys(k for r in records for k in r)  # ordered set
    return {k: [r.get(k) for r in records] for k in present}, len(records)


def columnar(payload: dict[str, Any], key: str, max_rows: int) -> tuple[Columns, int]:
    for name, values in payload.items():
        if not isinstance(values, list):
            raise unsupported(
                f'"{key}" as columns needs a list per column; {name!r} is {what(values)}: '
                "wrap it in a list, [value], for a single row"
            )
    lengths = [len(values) for values in payload.values()]
    if len(set(lengths)) > 1:
        first = next(iter(payload))
        name = next(n for n, v in payload.items() if len(v) != lengths[0])
        raise InputError(
            422,
            "ragged_input",
            f"column {name!r} has {len(payload[name])} values but {first!r} has "
            f"{lengths[0]}; send the same number of values for every column",
            name,
        )
    rows = lengths[0] if lengths else 0
    check_rows(rows, max_rows)
    return payload, rows


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error, pos = str(exc), exc.pos
    if "infinity when parsed" in error:  # re-read to name the column and row: see _wide
        doc = _wide(body)
        if doc is not None:
            return doc
        raise InputError(422, "non_finite", f"a number is too large for a float64 ({error})")
    near = body.decode("utf-8", "replace")[max(pos - 1, 0) : pos + 9]
    if "NaN" in near or "Infinity" in near:
        message = f"JSON has no NaN or Infinity ({error}); send null for a missing value"
    elif not body.strip():
        message = "the request body is empty; send a JSON object"
    else:
        message = f"the body is not valid JSON: {error}"
    raise InputError(400, "malformed_json", message)


def _wide(body: bytes) -> Any:
    """The body parsed as orjson would, but with numbers beyond float64 kept as `Overflow`."""
    import json
    import math

    def number(text: str) -> float | int | Overflow:
        if len(text) <= 20 and not any(c in text for c in ".eE"):
            value = int(text)
            if -(2**63) <= value < 2**64:  # orjson's int range; beyond it, a float
                return value
        number = float(text)
        return number if math.isfinite(number) else Overflow(text)

    def constant(text: str) -> None:
        raise ValueError(text)

    try:
        doc = json.loads(body, parse_float=number, parse_int=number, parse_constant=constant)
        orjson.dumps(doc, default=lambda o: None)  # what orjson refuses, e.g. lone surrogates
    except (ValueError, TypeError, RecursionError):
        return None
    return doc


def check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise empty("the request")
    if rows > max_rows:
        raise InputError(
            413,
            "too_many_rows",
            f"{rows} rows is more than this server takes in one request ({max_rows}, "
            "serve.max_rows); split them across several requests",
        )


def empty(where: str) -> InputError:
    return InputError(422, "empty_batch", f"{where} holds no rows; send at least one row")


def unsupported(message: str) -> InputError:
    return InputError(400, "unsupported_format", message)


def what(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else "a number")
