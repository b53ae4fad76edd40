from __future__ import annotations

import gzip
import io
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipml._hashing import sha256_file, sha256_frame
from shipml.data import RawSource, read_source
from shipml.errors import SourceError


def _sqlite(tmp_path: Path, frame: pd.DataFrame) -> str:
    db = tmp_path / "loans.db"
    with sqlite3.connect(db) as conn:
        frame.to_sql("loans", conn, index=False)
    return f"sqlite:///{db}"


def test_csv_is_parsed_and_hashed_by_its_bytes(loans_csv: Path, loans: pd.DataFrame) -> None:
    raw = read_source(str(loans_csv))

    assert isinstance(raw, RawSource)
    assert (raw.uri, raw.format) == (str(loans_csv), "csv")
    assert raw.source_hash == sha256_file(loans_csv)
    assert [str(t) for t in raw.frame.dtypes] == ["int64", "float64", "str", "bool"]
    pd.testing.assert_frame_equal(raw.frame, loans.astype({"purpose": "str"}))


def test_gzipped_csv_gives_the_same_rows_but_hashes_its_own_bytes(loans_csv: Path) -> None:
    gz = loans_csv.with_suffix(".csv.gz")
    gz.write_bytes(gzip.compress(loans_csv.read_bytes()))

    plain, packed = read_source(str(loans_csv)), read_source(str(gz))

    assert packed.format == "csv"
    assert packed.source_hash == sha256_file(gz) != plain.source_hash
    assert sha256_frame(packed.frame) == sha256_frame(plain.frame)


def test_parquet_round_trips_and_format_overrides_the_suffix(
    tmp_path: Path, loans: pd.DataFrame
) -> None:
    path = tmp_path / "loans.parquet"
    loans.to_parquet(path, index=False)
    odd = tmp_path / "loans.bin"
    odd.write_bytes(path.read_bytes())

    raw = read_source(str(path))
    forced = read_source(str(odd), format="parquet")

    assert raw.format == forced.format == "parquet"
    assert raw.source_hash == sha256_file(path) == forced.source_hash
    pd.testing.assert_frame_equal(raw.frame, loans.astype({"purpose": "str"}))


def test_sql_reads_the_query_and_hashes_url_query_and_rows(
    tmp_path: Path, loans: pd.DataFrame
) -> None:
    url = _sqlite(tmp_path, loans)

    raw = read_source(url, format="sql", query="SELECT * FROM loans")
    auto = read_source(url, query="SELECT * FROM loans")
    fewer = read_source(url, format="sql", query="SELECT * FROM loans WHERE id < 3")
    other_query = read_source(url, format="sql", query="SELECT * FROM loans ORDER BY id")

    assert (raw.format, raw.uri, auto.format) == ("sql", url, "sql")
    assert list(raw.frame.columns) == list(loans.columns)
    assert len(raw.frame) == 4 and len(fewer.frame) == 2
    assert raw.source_hash == auto.source_hash
    assert raw.source_hash != fewer.source_hash  # different rows
    assert raw.source_hash != other_query.source_hash  # same rows, different query


def test_sql_errors_never_show_the_password() -> None:
    url = "postgresql+psycopg://shipml:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=2"

    with pytest.raises(SourceError) as err:
        read_source(url, format="sql", query="SELECT 1")

    assert "s3cret-pw" not in str(err.value)
    assert "shipml:***@127.0.0.1:1" in str(err.value)


def _write(name: str, data: bytes | str) -> Callable[[Path], str]:
    def make(tmp_path: Path) -> str:
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    return make


def _dup_parquet(tmp_path: Path) -> str:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"])
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return _write("dup.parquet", buffer.getvalue())(tmp_path)


def _dup_sql(tmp_path: Path) -> str:
    return _sqlite(tmp_path, pd.DataFrame({"a": [1]}))


@pytest.mark.parametrize(
    ("make", "kwargs", "expected"),
    [
        (lambda p: str(p / "missing.csv"), {}, ["no such file", "missing.csv", "data.source"]),
        (_write("loans.txt", "a\n1\n"), {}, ["cannot tell the format", "loans.txt", "data.format"]),
        (lambda p: "sqlite:///x.db", {"format": "sql"}, ["has no query", "data.query"]),
        (_write("a.csv", "a\n1\n"), {"query": "SELECT 1", "format": "csv"}, ["queries only"]),
        (_write("bad.parquet", "not parquet at all"), {}, ["cannot parse", "as parquet"]),
        (_write("bad.csv.gz", "not gzip"), {}, ["cannot parse", "bad.csv.gz"]),
        (_write("empty.csv", ""), {}, ["is empty", "empty.csv"]),
        (_write("header.csv", "a,b\n"), {}, ["has no rows", "0 rows"]),
        (_write("dup.csv", "a,b,a\n1,2,3\n"), {}, ["duplicate column names ['a']"]),
        (_dup_parquet, {}, ["duplicate column names ['x']"]),
        (_dup_sql, {"query": "SELECT a, a FROM loans"}, ["duplicate column names ['a']"]),
        (_dup_sql, {"query": "SELECT * FROM nope"}, ["query on", "failed", "no such table"]),
        (_dup_sql, {"query": "SELECT * FROM loans WHERE a > 5"}, ["has no rows"]),
        (lambda p: "not a url", {"format": "sql", "query": "x"}, ["not a SQLAlchemy URL"]),
        (lambda p: str(p), {"format": "csv"}, ["cannot read", "permissions"]),
    ],
)
def test_source_errors_say_what_and_how_to_fix(
    tmp_path: Path,
    make: Callable[[Path], str],
    kwargs: dict[str, str],
    expected: list[str],
) -> None:
    source = make(tmp_path)

    with pytest.raises(SourceError) as err:
        read_source(source, **kwargs)  # type: ignore[arg-type]

    assert isinstance(err.value, ValueError)
    for text in expected:
        assert text in str(err.value)
