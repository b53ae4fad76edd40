"""The server's input contract: every format, every bad input, and properties over both."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shipml.serve.inputs import (
    Batch,
    Column,
    InputError,
    Policy,
    Schema,
    body_too_large,
    check_content_type,
    parse_invocations,
    parse_v2,
)

SCHEMA = Schema(
    (
        Column("amount", "double"),
        Column("rate", "float"),
        Column("term", "long"),
        Column("grade", "integer"),
        Column("owner", "boolean"),
        Column("purpose", "string"),
        Column("note", "string", required=False),
    )
)
ROWS = [
    {"amount": 1000.5, "rate": 0.25, "term": 36, "grade": 3, "owner": True, "purpose": "car"},
    {"amount": 7, "rate": 1, "term": 60, "grade": -2, "owner": False, "purpose": "école"},
]
V2_TYPE = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32"}
V2_TYPE |= {"boolean": "BOOL", "string": "BYTES"}
POLICY = Policy()


def encode(fmt: str, rows: list[dict[str, Any]], schema: Schema = SCHEMA) -> bytes:
    """The same rows in one of the accepted request formats."""
    names = [n for n in schema.names if any(n in r for r in rows)]
    table = [[r.get(n) for n in names] for r in rows]
    full = [[r.get(n) for n in schema.names] for r in rows]
    doc: Any = {
        "split": {"dataframe_split": {"columns": names, "data": table, "index": [0]}},
        "split_positional": {"dataframe_split": {"data": full}},
        "records": {"dataframe_records": rows, "params": {"k": 1}},
        "instances": {"instances": rows},
        "instances_lists": {"instances": full},
        "inputs_columns": {"inputs": {n: [r.get(n) for r in rows] for n in names}},
        "inputs_records": {"inputs": rows},
        "v2": {
            "id": "req-1",
            "inputs": [
                {
                    "name": c.name,
                    "shape": [len(rows), 1] if i % 2 else [len(rows)],
                    "datatype": V2_TYPE[c.type],
                    "data": [[r.get(c.name)] if i % 2 else r.get(c.name) for r in rows],
                }
                for i, c in enumerate(schema.columns)
                if c.name in names
            ],
        },
    }[fmt]
    return json.dumps(doc).encode()


FORMATS = [
    "split",
    "split_positional",
    "records",
    "instances",
    "instances_lists",
    "inputs_columns",
    "inputs_records",
    "v2",
]


def parse(fmt: str, body: bytes, schema: Schema = SCHEMA, policy: Policy = POLICY) -> Batch:
    return (
        parse_v2(body, schema, policy)[0]
        if fmt == "v2"
        else parse_invocations(body, schema, policy)
    )


def assert_same(batch: Batch, expected: dict[str, np.ndarray]) -> None:
    assert list(batch.columns) == list(expected)
    for name, want in expected.items():
        got = batch.columns[name]
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        if want.dtype == object:
            assert got.tolist() == want.tolist(), name
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
    assert batch.rows == len(next(iter(expected.values())))


EXPECTED = {
    "amount": np.array([1000.5, 7.0]),
    "rate": np.array([0.25, 1.0]),
    "term": np.array([36, 60], dtype=np.int64),
    "grade": np.array([3, -2], dtype=np.int64),
    "owner": np.array([True, False]),
    "purpose": np.array(["car", "école"], dtype=object),
    "note": np.array([None, None], dtype=object),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_parses_to_the_same_batch(fmt: str) -> None:
    rows = (
        ROWS
        if fmt not in ("split_positional", "instances_lists")
        else [{**r, "note": "n"} for r in ROWS]
    )
    expected = EXPECTED | ({"note": np.array(["n", "n"], dtype=object)} if rows is not ROWS else {})
    assert_same(parse(fmt, encode(fmt, rows)), expected)


def test_v2_returns_the_request_id() -> None:
    assert parse_v2(encode("v2", ROWS), SCHEMA, POLICY)[1] == "req-1"
    body = json.dumps({"inputs": json.loads(encode("v2", ROWS))["inputs"]}).encode()
    assert parse_v2(body, SCHEMA, POLICY)[1] is None


def test_missing_values_become_nan_or_none_and_integers_widen_to_float() -> None:
    rows = [dict(ROWS[0]), {k: None for k in ROWS[0]}]
    batch = parse_invocations(encode("records", rows), SCHEMA, POLICY)
    assert batch.columns["amount"].dtype == np.float64 and np.isnan(batch.columns["amount"][1])
    assert batch.columns["term"].dtype == np.float64
    assert batch.columns["term"][0] == 36 and np.isnan(batch.columns["term"][1])
    assert batch.columns["owner"].tolist() == [True, None]
    assert batch.columns["purpose"].tolist() == ["car", None]


def test_integral_floats_are_accepted_in_integer_columns() -> None:
    body = encode("records", [{**ROWS[0], "term": 36.0, "grade": -0.0}])
    batch = parse_invocations(body, SCHEMA, POLICY)
    assert batch.columns["term"].dtype == np.int64 and batch.columns["term"].tolist() == [36]
    assert batch.columns["grade"].tolist() == [0]


def test_extra_columns_are_dropped_when_the_policy_says_so() -> None:
    body = encode("records", [{**ROWS[0], "unused": [1, "x"]}])
    batch = parse_invocations(body, SCHEMA, Policy(extra_columns="drop"))
    assert "unused" not in batch.columns and list(batch.columns) == list(SCHEMA.names)


def test_params_and_v2_parameters_and_outputs_are_ignored() -> None:
    doc = json.loads(encode("v2", ROWS))
    doc |= {"parameters": {"x": 1}, "outputs": [{"name": "probability"}]}
    doc["inputs"][0]["parameters"] = {"content_type": "np"}
    assert parse_v2(json.dumps(doc).encode(), SCHEMA, POLICY)[0].rows == 2


def records(**changes: Any) -> bytes:
    return json.dumps({"dataframe_records": [{**ROWS[0], **changes}]}).encode()


def raw_records(text: str) -> bytes:
    """A one-record body whose `amount` is written exactly as `text` (e.g. NaN, 1e400)."""
    return records(amount="@").replace(b'"@"', text.encode())


def v2(**tensor: Any) -> bytes:
    doc = json.loads(encode("v2", ROWS[:1]))
    doc["inputs"][0] |= tensor
    return json.dumps(doc).encode()


BAD = [
    # (body, parser, status, code, field)
    (b"{", "inv", 400, "malformed_json", None),
    (b"", "inv", 400, "malformed_json", None),
    (b"\xff\xfe{}", "v2", 400, "malformed_json", None),
    (raw_records("NaN"), "inv", 400, "malformed_json", None),
    (raw_records("Infinity"), "inv", 400, "malformed_json", None),
    (raw_records("-Infinity"), "v2", 400, "malformed_json", None),
    (b"[1, 2]", "inv", 400, "unsupported_format", None),
    (b'{"data": [[1]]}', "inv", 400, "unsupported_format", None),
    (b'{"instances": [], "inputs": {}}', "inv", 400, "unsupported_format", None),
    (b'{"dataframe_split": {"columns": ["a"]}}', "inv", 400, "unsupported_format", None),
    (b'{"dataframe_records": {"amount": 1}}', "inv", 400, "unsupported_format", None),
    (b'{"instances": [1, 2]}', "inv", 400, "unsupported_format", None),
    (b'{"inputs": {"amount": 1}}', "inv", 400, "unsupported_format", None),
    (b'{"dataframe_records": [[1]]}', "inv", 400, "unsupported_format", None),
    (b'{"inputs": {"amount": [1]}}', "v2", 400, "unsupported_format", None),
    (v2(shape=[1, 3]), "v2", 400, "unsupported_format", None),
    (v2(shape=[True]), "v2", 400, "unsupported_format", None),
    (v2(extra=1), "v2", 400, "unsupported_format", None),
    (b'{"id": 7, "inputs": []}', "v2", 400, "unsupported_format", None),
    (
        records(amount=None).replace(b'"amount": null, ', b""),
        "inv",
        422,
        "missing_column",
        "amount",
    ),
    (
        records(ammount=1).replace(b'"amount": 1000.5, ', b""),
        "inv",
        422,
        "missing_column",
        "amount",
    ),
    (records(extra=1), "inv", 422, "unexpected_column", "extra"),
    (v2(name="extra"), "v2", 422, "missing_column", "amount"),
    (records(amount="1000.5"), "inv", 422, "wrong_type", "amount"),
    (records(amount=True), "inv", 422, "wrong_type", "amount"),
    (records(amount=[1.0]), "inv", 422, "wrong_type", "amount"),
    (records(term=True), "inv", 422, "wrong_type", "term"),
    (records(term=36.5), "inv", 422, "wrong_type", "term"),
    (records(term="36"), "inv", 422, "wrong_type", "term"),
    (records(owner=1), "inv", 422, "wrong_type", "owner"),
    (records(purpose=36), "inv", 422, "wrong_type", "purpose"),
    (records(note=False), "inv", 422, "wrong_type", "note"),
    (v2(datatype="BYTES"), "v2", 422, "wrong_type", "amount"),
    (v2(data=["1000.5"]), "v2", 422, "wrong_type", "amount"),
    (raw_records("1e400"), "inv", 422, "non_finite", "amount"),
    (records(term=1).replace(b'"term": 1', b'"term": -1e400'), "inv", 422, "non_finite", "term"),
    (records(rate=1e39), "inv", 422, "non_finite", "rate"),
    (records(term=2**63), "inv", 422, "integer_out_of_range", "term"),
    (records(term=2**64 - 1), "inv", 422, "integer_out_of_range", "term"),
    (records(term=-(2**63) - 1), "inv", 422, "integer_out_of_range", "term"),
    (records(term=2.0**60), "inv", 422, "integer_out_of_range", "term"),
    (records(grade=2**31), "inv", 422, "integer_out_of_range", "grade"),
    (b'{"dataframe_records": []}', "inv", 422, "empty_batch", None),
    (b'{"dataframe_split": {"columns": [], "data": []}}', "inv", 422, "empty_batch", None),
    (b'{"inputs": {}}', "inv", 422, "empty_batch", None),
    (b'{"instances": []}', "inv", 422, "empty_batch", None),
    (b'{"inputs": []}', "v2", 422, "empty_batch", None),
    (v2(shape=[0], data=[]), "v2", 422, "empty_batch", None),
    (
        b'{"dataframe_split": {"columns": ["amount"], "data": [[1, 2]]}}',
        "inv",
        422,
        "ragged_input",
        None,
    ),
    (b'{"instances": [[1, 2]]}', "inv", 422, "ragged_input", None),
    (b'{"inputs": {"amount": [1], "rate": [1, 2]}}', "inv", 422, "ragged_input", "rate"),
    (v2(shape=[2], data=[1.0, 2.0]), "v2", 422, "ragged_input", "rate"),
    (v2(shape=[3]), "v2", 422, "ragged_input", "amount"),
    (v2(shape=[1, 1], data=[[1.0, 2.0]]), "v2", 422, "ragged_input", "amount"),
]


@pytest.mark.parametrize(("body", "parser", "status", "code", "field"), BAD)
def test_bad_input_is_answered_with_its_status_code_and_field(
    body: bytes, parser: str, status: int, code: str, field: str | None
) -> None:
    with pytest.raises(InputError) as caught:
        parse("v2" if parser == "v2" else "inv", body)
    error = caught.value
    assert (error.status, error.code, error.field) == (status, code, field), error.message
    assert error.to_dict() == {"error": {"code": code, "message": error.message, "field": field}}
    if field is not None:
        assert repr(field) in error.message


def test_messages_name_the_row_the_value_and_the_fix() -> None:
    with pytest.raises(InputError) as caught:
        parse_invocations(encode("records", [ROWS[0], {**ROWS[1], "term": "60"}]), SCHEMA, POLICY)
    message = caught.value.message
    assert "'term'" in message and "row 1" in message and '"60"' in message
    assert "without quotes" in message
    with pytest.raises(InputError) as caught:
        parse_invocations(raw_records("NaN"), SCHEMA, POLICY)
    assert "null" in caught.value.message and "NaN" in caught.value.message
    with pytest.raises(InputError) as caught:
        parse_invocations(raw_records("1e400"), SCHEMA, POLICY)
    assert "1e400" in caught.value.message and "row 0" in caught.value.message
    with pytest.raises(InputError) as caught:
        parse_invocations(records(ammount=1).replace(b'"amount": 1000.5, ', b""), SCHEMA, POLICY)
    assert "'ammount'" in caught.value.message  # the likely typo is pointed out


def test_missing_values_are_rejected_when_the_policy_says_so() -> None:
    strict = Policy(missing_values="reject")
    for body in (
        records(rate=None),
        encode("inputs_records", [ROWS[0], {**ROWS[1], "rate": None}]),
    ):
        with pytest.raises(InputError) as caught:
            parse_invocations(body, SCHEMA, strict)
        assert (caught.value.status, caught.value.code, caught.value.field) == (
            422,
            "missing_value",
            "rate",
        )
    assert parse_invocations(records(note=None), SCHEMA, POLICY).columns["note"].tolist() == [None]


def test_missing_values_in_integer_columns_must_stay_exact_as_float64() -> None:
    body = encode("records", [{**ROWS[0], "term": 2**53 + 1}, {**ROWS[1], "term": None}])
    with pytest.raises(InputError) as caught:
        parse_invocations(body, SCHEMA, POLICY)
    assert (caught.value.code, caught.value.field) == ("integer_out_of_range", "term")


def test_too_many_rows_is_413() -> None:
    for fmt in FORMATS:
        with pytest.raises(InputError) as caught:
            parse(fmt, encode(fmt, [{**r, "note": ""} for r in ROWS]), policy=Policy(max_rows=1))
        assert (caught.value.status, caught.value.code) == (413, "too_many_rows"), fmt


@pytest.mark.parametrize(
    "value", [None, "", "application/json", b"application/json; charset=UTF-8", "Application/JSON"]
)
def test_json_content_types_are_accepted(value: bytes | str | None) -> None:
    assert check_content_type(value) is None


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("application/x-www-form-urlencoded", "-H 'Content-Type: application/json'"),
        (b"text/csv", "CSV"),
        ("application/json; charset=latin-1", "UTF-8"),
        ("text/plain", "application/json"),
    ],
)
def test_other_content_types_are_415(value: bytes | str, hint: str) -> None:
    with pytest.raises(InputError) as caught:
        check_content_type(value)
    assert (caught.value.status, caught.value.code) == (415, "unsupported_media_type")
    assert hint in caught.value.message


def test_body_too_large_is_413_naming_the_limit() -> None:
    error = body_too_large(1024)
    assert (error.status, error.code) == (413, "body_too_large") and "1024" in error.message


def test_schema_from_mlflow_signature() -> None:
    inputs = [
        {"type": "long", "name": "funded_amnt", "required": True},
        {"type": "string", "name": "term", "required": False},
        {"type": "double", "name": "rate"},
    ]
    schema = Schema.from_mlflow(inputs)
    assert schema.names == ("funded_amnt", "term", "rate")
    assert schema.columns[1] == Column("term", "string", required=False)
    assert schema.columns[2].required is True


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"type": "tensor", "name": "pixels", "tensor-spec": {"dtype": "float64"}}, "'pixels'"),
        ({"type": "datetime", "name": "issued"}, "'issued'"),
        ({"type": "binary", "name": "blob"}, "'blob'"),
        ({"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}, "input 0"),
    ],
)
def test_schema_rejects_types_it_cannot_serve(spec: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Schema.from_mlflow([spec])


def test_policy_from_config() -> None:
    from shipml.config import ServeConfig

    serve = ServeConfig(extra_columns="drop", missing_values="reject", max_rows=5)
    assert Policy.from_config(serve) == Policy("drop", "reject", 5)
    assert Policy.from_config(ServeConfig()) == Policy()  # the defaults agree


def test_importing_the_module_loads_neither_pandas_nor_the_config() -> None:
    heavy = "{'pandas', 'shipml.config', 'mlflow'}"
    code = f"import sys, shipml.serve.inputs; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Properties ------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "double": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
    "float": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "long": st.integers(-(2**63), 2**63 - 1) | st.integers(-(2**53), 2**53).map(float),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "boolean": st.booleans(),
    "string": TEXT,
}


@st.composite
def tables(draw: st.DrawFn) -> tuple[Schema, list[dict[str, Any]]]:
    names = draw(st.lists(TEXT.filter(bool), min_size=1, max_size=6, unique=True))
    kinds = draw(st.lists(st.sampled_from(list(VALUES)), min_size=len(names), max_size=len(names)))
    schema = Schema(tuple(Column(n, k) for n, k in zip(names, kinds, strict=True)))
    missing = draw(st.booleans())
    rows = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    n: (st.none() | VALUES[k]) if missing else VALUES[k]
                    for n, k in zip(names, kinds, strict=True)
                }
            ),
            min_size=1,
            max_size=5,
        )
    )
    return schema, rows


def expected_column(kind: str, values: list[Any]) -> np.ndarray:
    if None in values:
        if kind in ("boolean", "string"):
            return np.array(values, dtype=object)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    dtype = {"double": np.float64, "float": np.float64, "long": np.int64, "integer": np.int64}
    dtype |= {"boolean": np.bool_, "string": object}
    return np.array([int(v) if kind == "long" else v for v in values], dtype=dtype[kind])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from(FORMATS))
def test_valid_rows_always_parse_with_values_preserved(
    table: tuple[Schema, list[dict[str, Any]]], fmt: str
) -> None:
    schema, rows = table
    for c in schema.columns:  # with a missing value, a long column is float64: exact to 2**53
        values = [r[c.name] for r in rows]
        if c.type == "long" and None in values:
            assume(all(v is None or abs(v) <= 2**53 for v in values))
    batch = parse(fmt, encode(fmt, rows, schema), schema)
    assert_same(
        batch, {c.name: expected_column(c.type, [r[c.name] for r in rows]) for c in schema.columns}
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
FORMAT_KEYS = ["dataframe_split", "dataframe_records", "instances", "inputs", "params", "id"]


def json_body(value: Any) -> bytes:
    return json.dumps(value).replace("Infinity", "1e400").encode()


CODES = {
    "malformed_json",
    "unsupported_format",
    "missing_column",
    "unexpected_column",
    "wrong_type",
    "missing_value",
    "non_finite",
    "integer_out_of_range",
    "empty_batch",
    "too_many_rows",
    "ragged_input",
}


def assert_4xx(body: bytes) -> None:
    for parser in (parse_invocations, parse_v2):
        try:
            parser(body, SCHEMA, POLICY)
        except InputError as error:
            assert 400 <= error.status < 500 and error.code in CODES and error.message
            assert error.field is None or isinstance(error.field, str)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_input_error(body: bytes) -> None:
    assert_4xx(body)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(FORMAT_KEYS), JSON, max_size=2) | JSON)
def test_random_json_never_raises_anything_but_input_error(doc: Any) -> None:
    assert_4xx(json_body(doc))


@settings(max_examples=300)
@given(
    st.lists(JSON, max_size=3),
    st.sampled_from(list(V2_TYPE.values())),
    st.sampled_from(SCHEMA.names),
)
def test_random_v2_tensors_never_raise_anything_but_input_error(
    data: list[Any], datatype: str, name: str
) -> None:
    tensor = {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}
    assert_4xx(json_body({"inputs": [tensor]}))
    assert_4xx(json_body({"dataframe_split": {"columns": [name], "data": [data]}}))


WRONG: dict[str, st.SearchStrategy[Any]] = {
    "double": TEXT | st.booleans() | st.lists(st.integers(), max_size=2),
    "float": TEXT | st.booleans() | st.dictionaries(TEXT, st.integers(), max_size=1),
    "long": TEXT | st.booleans() | st.floats().filter(lambda f: not f.is_integer() and f == f),
    "integer": TEXT | st.booleans() | st.floats(0.01, 0.99),
    "boolean": TEXT | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    "string": st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans(),
}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(FORMATS))
def test_a_wrong_type_anywhere_is_named(data: st.DataObject, fmt: str) -> None:
    column = data.draw(st.sampled_from(SCHEMA.columns[:-1]))
    row = data.draw(st.integers(0, len(ROWS) - 1))
    value = data.draw(WRONG[column.type])
    rows = [{**r, "note": "n"} for r in ROWS]
    rows[row][column.name] = value
    with pytest.raises(InputError) as caught:
        parse(fmt, json_body_rows(fmt, rows))
    assert (caught.value.status, caught.value.field) == (422, column.name)
    if caught.value.code == "ragged_input":  # in v2, a list value looks like a nested row
        assert fmt == "v2" and isinstance(value, list)
        return
    assert caught.value.code in ("wrong_type", "non_finite"), caught.value.message
    assert f"row {row}" in caught.value.message


def json_body_rows(fmt: str, rows: list[dict[str, Any]]) -> bytes:
    return encode(fmt, rows).replace(b"Infinity", b"1e400")


def test_orjson_never_yields_a_non_finite_float() -> None:
    """`to_array` skips the range check on double columns because of this."""
    import orjson

    for text in ("1.7976931348623157e308", "-1.7976931348623157e308", "4.9e-324", "1e-400"):
        assert np.isfinite(orjson.loads(text))
    for text in ("1.7976931348623159e308", "1e309", "-1e400", "1" * 400):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)


@pytest.mark.parametrize(
    "rows", [1, 40]
)  # short columns are range-checked in Python, long in numpy
@pytest.mark.parametrize(
    ("column", "bad", "code"),
    [("grade", 2**31, "integer_out_of_range"), ("rate", -1e39, "non_finite")],
)
def test_range_checks_hold_for_short_and_long_columns(
    rows: int, column: str, bad: float, code: str
) -> None:
    table = [dict(ROWS[0]) for _ in range(rows)]
    assert parse_invocations(encode("records", table), SCHEMA, POLICY).rows == rows
    table[-1][column] = bad
    with pytest.raises(InputError) as caught:
        parse_invocations(encode("records", table), SCHEMA, POLICY)
    assert (caught.value.code, caught.value.field) == (code, column)
    assert f"row {rows - 1}" in caught.value.message
