"""Request bodies in, validated columns out: the inference server's input contract.

    schema = Schema.from_mlflow(orjson.loads(signature["inputs"]))
    policy = Policy.from_config(project.config.serve)
    check_content_type(headers.get(b"content-type"))     # 415 unless JSON
    batch = parse_invocations(body, schema, policy)       # MLflow's /invocations formats
    batch, request_id = parse_v2(body, schema, policy)    # Open Inference Protocol v2

Bad input raises `InputError` (never anything else): `status` 400/413/415/422, a stable
`code`, a `message` naming the field, the row and the value, and `to_dict()` for the body.
Nothing is coerced silently: `true` is not 1, `"3"` is not 3, 2.5 is not a long. Integral
numbers are accepted in integer columns whichever way they are written (3 or 3.0: JSON has
one number type and many clients write every number as a float), within ±2**53 when written
with a decimal point or exponent (beyond that a float is no longer exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
from numpy.typing import NDArray

from shipml.serve._convert import (
    COLUMN_TYPES,
    Columns,
    ColumnType,
    InputError,
    check_rows,
    columnar,
    empty,
    load_json,
    missing_column,
    records,
    to_array,
    transpose,
    unsupported,
    what,
)

if TYPE_CHECKING:
    from shipml.config import ServeConfig

__all__ = [
    "V2_DATATYPE",
    "Batch",
    "Column",
    "ColumnType",
    "InputError",
    "Policy",
    "Schema",
    "body_too_large",
    "check_content_type",
    "parse_invocations",
    "parse_v2",
]

_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_V2_TYPES: dict[str, frozenset[str]] = {
    "double": frozenset({"FP16", "FP32", "FP64"}),
    "long": frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}),
    "boolean": frozenset({"BOOL"}),
    "string": frozenset({"BYTES"}),
}
_V2_TYPES["double"] |= _V2_TYPES["long"]
_V2_TYPES["float"], _V2_TYPES["integer"] = _V2_TYPES["double"], _V2_TYPES["long"]
V2_DATATYPE = {  # the OIP v2 datatype that carries each signature type
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}
_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})


@dataclass(frozen=True)
class Column:
    """One input column of a model signature; `type` is MLflow's name for it."""

    name: str
    type: ColumnType
    required: bool = True


@dataclass(frozen=True)
class Schema:
    """The columns a model takes, in the order it takes them."""

    columns: tuple[Column, ...]
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _kinds: dict[str, ColumnType] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        if not names:
            raise ValueError("a schema needs at least one column")
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"columns {twice} appear more than once in the schema")
        for c in self.columns:
            if c.type not in COLUMN_TYPES:
                raise ValueError(
                    f"column {c.name!r} has type {c.type!r}; use one of {COLUMN_TYPES}"
                )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_kinds", {c.name: c.type for c in self.columns})

    @classmethod
    def from_mlflow(cls, inputs: list[dict[str, Any]]) -> Schema:
        """From the parsed `signature.inputs` of an MLmodel file (column specs only)."""
        columns = []
        for i, spec in enumerate(inputs):
            spec = spec if isinstance(spec, dict) else {}
            name, kind, required = spec.get("name"), spec.get("type"), spec.get("required", True)
            if not isinstance(name, str):
                raise ValueError(
                    f"signature input {i} is not a named column; shipml serves named columns "
                    "(log the model with a pandas DataFrame as its input example)"
                )
            if not isinstance(required, bool):
                raise ValueError(f"column {name!r} has required={required!r}; use true or false")
            if kind not in COLUMN_TYPES:
                raise ValueError(
                    f"column {name!r} has signature type {kind!r}, which shipml cannot serve; "
                    f"supported: {', '.join(COLUMN_TYPES)} (convert it before training)"
                )
            columns.append(Column(name, kind, required))
        return cls(tuple(columns))


@dataclass(frozen=True)
class Policy:
    """What the server does with extra columns, nulls, and large batches (`serve:` config)."""

    extra_columns: Literal["reject", "drop"] = "reject"
    missing_values: Literal["reject", "allow"] = "allow"
    max_rows: int = 10_000

    def __post_init__(self) -> None:
        if self.extra_columns not in ("reject", "drop"):
            raise ValueError(
                f"extra_columns must be 'reject' or 'drop', got {self.extra_columns!r}"
            )
        if self.missing_values not in ("reject", "allow"):
            raise ValueError(
                f"missing_values must be 'reject' or 'allow', got {self.missing_values!r}"
            )
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {self.max_rows}")

    @classmethod
    def from_config(cls, serve: ServeConfig) -> Policy:
        return cls(serve.extra_columns, serve.missing_values, serve.max_rows)


@dataclass(frozen=True, eq=False)
class Batch:
    """Validated rows, column-wise in schema order, with the dtypes the model expects.

    double/float: float64, missing as NaN. long/integer: int64, or float64 with NaN when the
    column has a missing value (int64 cannot hold one). boolean: bool, or object with None
    when missing. string: object array of str, None when missing. An optional column absent
    from the request is all missing.
    """

    columns: dict[str, NDArray[Any]]
    rows: int


def check_content_type(header_value: bytes | str | None) -> None:
    """Accept application/json (charset UTF-8 if given) or no content type; else 415."""
    if header_value is None:
        return
    text = header_value.decode("latin-1") if isinstance(header_value, bytes) else header_value
    mime, _, params = text.partition(";")
    mime = mime.strip().lower()
    if mime in ("", "application/json"):
        for param in params.split(";"):
            key, _, value = param.partition("=")
            charset = value.strip().strip('"').lower()
            if key.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
                raise InputError(
                    415,
                    "unsupported_media_type",
                    f"charset {charset!r} is not accepted; send the JSON body as UTF-8",
                )
        return
    hint = "send a JSON body with Content-Type: application/json"
    if mime == "application/x-www-form-urlencoded":
        hint = "curl -d sends this by default: add -H 'Content-Type: application/json'"
    elif mime == "text/csv":
        hint = 'CSV is not accepted: send JSON, e.g. {"dataframe_split": {...}}'
    raise InputError(415, "unsupported_media_type", f"Content-Type {text[:80]!r}: {hint}")


def body_too_large(limit_bytes: int) -> InputError:
    """The error for a body over `serve.max_body_bytes` (the server stops reading at the limit)."""
    return InputError(
        413,
        "body_too_large",
        f"the request body is larger than {limit_bytes} bytes (serve.max_body_bytes); "
        "split the rows across several requests",
    )


def parse_invocations(body: bytes, schema: Schema, policy: Policy) -> Batch:
    """A body in one of MLflow's `/invocations` JSON formats; an optional "params" is ignored."""
    doc = load_json(body)
    keys = list(doc) if isinstance(doc, dict) else []
    found = [k for k in keys if k in _FORMATS]
    if len(found) != 1 or any(k not in _FORMATS and k != "params" for k in keys):
        got = f"keys {_json(keys)}" if isinstance(doc, dict) else what(doc)
        example = (
            f'{{"dataframe_split": {{"columns": {_json(schema.names)}, "data": [[...], ...]}}}}'
        )
        raise unsupported(
            f"the body must be a JSON object with exactly one of {_json(_FORMATS)} (and "
            f'optionally "params"); got {got}. Example: {example}'
        )
    key = found[0]
    payload = doc[key]
    if key == "dataframe_split":
        columns, rows = _split(payload, schema, policy)
    elif key == "dataframe_records" or (
        isinstance(payload, list) and payload and isinstance(payload[0], dict)
    ):
        columns, rows = records(payload, key, schema.names, policy.max_rows)
    elif isinstance(payload, list) and payload and isinstance(payload[0], list):
        check_rows(len(payload), policy.max_rows)
        columns = transpose(payload, schema.names, key, positional=True)
        rows = len(payload)
    elif isinstance(payload, dict):
        columns, rows = columnar(payload, key, policy.max_rows)
    elif payload == []:
        raise empty(key)
    else:
        raise unsupported(
            f'"{key}" must be a list of records [{{column: value}}], a list of rows in '
            f"signature order [[...]], or columns {{column: [values]}}; got {what(payload)}"
        )
    return _assemble(columns, rows, schema, policy)


def parse_v2(body: bytes, schema: Schema, policy: Policy) -> tuple[Batch, str | None]:
    """An Open Inference Protocol v2 request: one tensor per column, shape [n] or [n, 1]."""
    doc = load_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise unsupported(
            'the body must be a JSON object with "inputs": [{"name", "shape", "datatype", '
            f'"data"}}, ...], one tensor per column; got {what(doc)}'
        )
    unknown = sorted(doc.keys() - {"id", "parameters", "inputs", "outputs"})
    request_id = doc.get("id")
    if unknown or not isinstance(request_id, str | None):
        raise unsupported(
            f'unexpected keys {_json(unknown)} or non-string "id" in the inference request'
        )
    columns: Columns = {}
    rows = -1
    for i, tensor in enumerate(doc["inputs"]):
        name, datatype, data = _tensor(i, tensor)
        if name in columns:
            raise InputError(422, "unexpected_column", f"tensor {name!r} appears twice", name)
        kind = schema._kinds.get(name)
        if kind is not None and datatype not in _V2_TYPES[kind]:
            raise InputError(
                422,
                "wrong_type",
                f"tensor {name!r} has datatype {datatype} but the column is {kind}; "
                f"send datatype {V2_DATATYPE[kind]}",
                name,
            )
        if len(data) != rows:
            if rows != -1:
                raise InputError(
                    422,
                    "ragged_input",
                    f"tensor {name!r} has {len(data)} rows but earlier tensors have {rows}; "
                    "send the same number of rows for every column",
                    name,
                )
            rows = len(data)
            check_rows(rows, policy.max_rows)
        columns[name] = data
    if rows == -1:
        raise empty("inputs")
    return _assemble(columns, rows, schema, policy), request_id


def _tensor(i: int, tensor: object) -> tuple[str, str, list[object]]:
    """One v2 input tensor's name, datatype and flat data, its shape checked against its data."""
    if isinstance(tensor, dict) and (len(tensor) <= 4 or tensor.keys() <= _TENSOR_KEYS):
        name, shape = tensor.get("name"), tensor.get("shape")
        datatype, data = tensor.get("datatype"), tensor.get("data")
    else:
        name = shape = datatype = data = None
    if (
        type(name) is not str
        or type(datatype) is not str
        or type(data) is not list
        or type(shape) is not list
        or not 1 <= len(shape) <= 2
        or type(shape[0]) is not int
        or (len(shape) == 2 and (type(shape[1]) is not int or shape[1] != 1))
    ):
        got = f"keys {_json(sorted(tensor))}" if isinstance(tensor, dict) else what(tensor)
        raise unsupported(
            f'inputs[{i}] must be {{"name": column, "shape": [rows] or [rows, 1], "datatype": '
            f'"FP64"|"INT64"|"BOOL"|"BYTES"|..., "data": [values]}} (optionally "parameters"), '
            f"one tensor per column; got {got}"
            + (f" with shape {_json(shape)}" if isinstance(shape, list) else "")
        )
    if data and type(data[0]) is list:  # shape [n, 1] sent nested
        if set(map(type, data)) != {list} or set(map(len, data)) != {1}:
            raise InputError(
                422, "ragged_input", f"tensor {name!r}: nested rows must hold one value", name
            )
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise InputError(
            422,
            "ragged_input",
            f"tensor {name!r} declares shape {_json(shape)} but holds {len(data)} values; "
            "make them agree",
            name,
        )
    return name, datatype, data


def _split(payload: object, schema: Schema, policy: Policy) -> tuple[Columns, int]:
    keys = sorted(payload) if isinstance(payload, dict) else []
    if (
        not isinstance(payload, dict)
        or "data" not in payload
        or payload.keys() - {"columns", "data", "index"}
        or not isinstance(payload["data"], list)
    ):
        raise unsupported(
            '"dataframe_split" must be {"columns": [names], "data": [[row], ...]} (an "index" '
            f"is ignored); got {what(payload)} with keys {_json(keys)}"
        )
    data = payload["data"]
    names = payload.get("columns")
    if names is None:
        check_rows(len(data), policy.max_rows)
        return transpose(data, schema.names, "dataframe_split.data", positional=True), len(data)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise unsupported('"dataframe_split.columns" must be a list of column names (strings)')
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise InputError(422, "unexpected_column", f"column {twice!r} is named twice", twice)
    check_rows(len(data), policy.max_rows)
    return transpose(data, tuple(names), "dataframe_split.data", positional=False), len(data)


def _assemble(columns: Columns, rows: int, schema: Schema, policy: Policy) -> Batch:
    extra = [name for name in columns if name not in schema._kinds]
    for column in schema.columns:
        if column.name not in columns and column.required:
            near = _near(column.name, extra)
            raise InputError(
                422,
                "missing_column",
                f"column {column.name!r} ({column.type}) is missing{near}; the model needs "
                f"{list(schema.names)}",
                column.name,
            )
    if extra and policy.extra_columns == "reject":
        raise InputError(
            422,
            "unexpected_column",
            f"column {extra[0]!r} is not in the model's signature (all unexpected: "
            f"{_json(extra)}); remove it, or set serve.extra_columns: drop on the server",
            extra[0],
        )
    allow = policy.missing_values == "allow"
    out: dict[str, NDArray[Any]] = {}
    for column in schema.columns:
        values = columns.get(column.name)
        if values is None:
            out[column.name] = missing_column(column.type, rows)
        else:
            out[column.name] = to_array(column.name, column.type, values, allow)
    return Batch(out, rows)


def _near(name: str, candidates: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (the request has {close[0]!r}: a typo?)" if close else ""


def _json(value: object) -> str:
    """A value as JSON for an error message (sets sorted, too-large numbers as written)."""

    def plain(o: object) -> object:
        return sorted(o) if isinstance(o, set) else getattr(o, "text", repr(o))

    return orjson.dumps(value, default=plain).decode()[:200]
