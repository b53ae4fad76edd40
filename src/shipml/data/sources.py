"""Read a raw source (CSV, gzipped CSV, Parquet, or a SQL query) into one DataFrame.

`read_source` is the only entry point. It reads a file's bytes once, hashes exactly those
bytes (so `source_hash` matches `sha256sum` of the file) and parses them in memory; a SQL
source is fingerprinted by its password-free URL, the query and the rows it returned.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shipml._hashing import sha256_bytes, sha256_frame, sha256_json
from shipml._urls import redact
from shipml.errors import SourceError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RawSource", "SourceFormat", "read_source"]

SourceFormat = Literal["auto", "csv", "parquet", "sql"]

_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True, eq=False)
class RawSource:
    """One read of a source: its rows, where they came from, and a fingerprint of the raw input."""

    frame: pd.DataFrame
    uri: str
    format: str
    source_hash: str


def read_source(
    source: str, *, format: SourceFormat = "auto", query: str | None = None
) -> RawSource:
    """Read `source`, a file path or object-store URI, or a SQLAlchemy URL when format is sql.

    With format "auto", a query means SQL; otherwise the file suffix decides
    (.csv, .csv.gz, .parquet, .pq).
    """
    fmt = _resolve_format(source, format, query)
    if fmt == "sql":
        if not query:
            raise SourceError(
                f"SQL source {redact(source)!r} has no query; set data.query in shipml.yaml"
            )
        frame, uri, source_hash = _read_sql(source, query)
    else:
        if query is not None:
            raise SourceError(
                f"a query was given for the {fmt} file {source!r}; queries only apply to SQL "
                f"sources: remove data.query or set data.format: sql"
            )
        data = _read_bytes(source)
        frame = _parse_file(source, fmt, data)
        uri, source_hash = source, sha256_bytes(data)
    _check_frame(frame, uri)
    return RawSource(frame=frame, uri=uri, format=fmt, source_hash=source_hash)


def _resolve_format(source: str, format: SourceFormat, query: str | None) -> str:
    if format != "auto":
        return format
    if query is not None:
        return "sql"
    name = source.lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise SourceError(
        f"cannot tell the format of {source!r} from its suffix (known: "
        f"{', '.join(_SUFFIXES)}); rename the file, or set data.format in shipml.yaml "
        f"(csv, parquet, or sql with data.query)"
    )


def _read_bytes(source: str) -> bytes:
    try:
        if "://" in source:
            from pyarrow import fs

            filesystem, path = fs.FileSystem.from_uri(source)
            with filesystem.open_input_stream(path) as stream:
                return bytes(stream.read())
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise SourceError(f"no such file {source!r}; check data.source in shipml.yaml") from None
    except (OSError, ValueError) as exc:
        raise SourceError(
            f"cannot read {source!r} ({exc}); check the path and its permissions"
        ) from None


def _parse_file(source: str, fmt: str, data: bytes) -> pd.DataFrame:
    import pandas as pd

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            _check_unique(pq.read_schema(io.BytesIO(data)).names, source)
            return pd.read_parquet(io.BytesIO(data))
        gz: Literal["gzip"] | None = "gzip" if source.lower().endswith(".gz") else None
        # pandas renames a repeated header to 'a.1'; read the header row as data to see it.
        header = pd.read_csv(io.BytesIO(data), compression=gz, header=None, nrows=1, dtype=str)
        _check_unique([str(c) for c in header.iloc[0].tolist()], source)
        return pd.read_csv(io.BytesIO(data), compression=gz)
    except SourceError:
        raise
    except pd.errors.EmptyDataError:
        raise SourceError(
            f"{source!r} is empty (no header, no rows); point data.source at a file with data"
        ) from None
    except (ValueError, OSError, EOFError) as exc:
        raise SourceError(
            f"cannot parse {source!r} as {fmt} ({type(exc).__name__}: {exc}); check that the "
            f"file is valid {fmt}, or set data.format in shipml.yaml"
        ) from None


def _read_sql(source: str, query: str) -> tuple[pd.DataFrame, str, str]:
    import pandas as pd
    import sqlalchemy as sa

    try:
        url = sa.make_url(source)
    except sa.exc.ArgumentError:
        raise SourceError(
            f"{source!r} is not a SQLAlchemy URL (e.g. sqlite:///data.db, "
            f"postgresql+psycopg://user@host/db); check data.source in shipml.yaml"
        ) from None
    safe = redact(source)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise SourceError(
            f"cannot open SQL source {safe!r} ({exc}); install the database driver or fix "
            f"data.source in shipml.yaml"
        ) from None
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(sa.text(query), conn)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ or exc  # pandas wraps the SQLAlchemy error
        reason = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        raise SourceError(
            f"query on {safe!r} failed ({reason}); check data.query and data.source in shipml.yaml"
        ) from None
    finally:
        engine.dispose()
    _check_unique([str(c) for c in frame.columns], safe)
    source_hash = sha256_json({"url": safe, "query": query, "content": sha256_frame(frame)})
    return frame, safe, source_hash


def _check_unique(columns: Iterable[str], source: str) -> None:
    repeated = sorted(c for c, n in Counter(columns).items() if n > 1)
    if repeated:
        raise SourceError(
            f"{source!r} has duplicate column names {repeated}; give every column a "
            f"unique name in the source"
        )


def _check_frame(frame: pd.DataFrame, uri: str) -> None:
    if len(frame.columns) == 0 or len(frame) == 0:
        raise SourceError(
            f"{uri!r} has no rows ({len(frame.columns)} columns, 0 rows); point data.source "
            f"(and data.query) at a table with data"
        )
