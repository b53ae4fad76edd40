"""The one conversion between pandas and what a Delta table stores, in both directions.

A snapshot's content hash is taken from the frame *as `load` will return it*: `prepare`
converts a frame to Arrow types Delta can hold, then reads that Arrow table back exactly the
way a loaded version is read (`to_frame`). `to_frame` restores the recorded pandas dtypes,
so ints with missing values stay `Int64`, categories stay `category`, and the hash of a
loaded version equals the hash recorded at ingest.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from shipml.errors import SnapshotError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

Schema = list[tuple[str, str]]


def prepare(frame: pd.DataFrame, what: str) -> tuple[pa.Table, Schema, pd.DataFrame]:
    """Arrow table to write, the [column, dtype] schema to record, and the frame load returns."""
    import pyarrow as pa

    frame = frame.rename(columns=str)
    schema = [(str(c), str(t)) for c, t in frame.dtypes.items()]
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        target = pa.schema([f.with_type(_storable(f.type)) for f in table.schema])
        table = table.cast(target, safe=True).replace_schema_metadata(None)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise SnapshotError(
            f"{what} cannot be stored in Delta Lake ({exc}); give each column one type "
            f"(e.g. no mix of numbers and text) and timestamps at most microsecond precision"
        ) from None
    return table, schema, to_frame(table, schema)


def to_frame(table: pa.Table, schema: Schema) -> pd.DataFrame:
    """The pandas frame of a stored table, with the dtypes recorded at ingest."""
    frame = table.to_pandas()
    casts = {c: t for c, t in schema if c in frame.columns and str(frame[c].dtype) != t}
    for column, dtype in casts.items():
        # If a dtype cannot be restored, keep the stored one: still deterministic, so the
        # content hash of a loaded snapshot still agrees with the one recorded at ingest.
        with contextlib.suppress(TypeError, ValueError):
            frame[column] = frame[column].astype(dtype)
    return frame


def _storable(t: pa.DataType) -> pa.DataType:
    """The Arrow type Delta stores for `t`; widened so no value changes on the way in."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _storable(t.value_type)
    if pa.types.is_unsigned_integer(t):  # Delta has no unsigned ints; it would wrap uint8
        return {8: pa.int16(), 16: pa.int32()}.get(t.bit_width, pa.int64())
    if pa.types.is_timestamp(t):  # Delta stores microseconds
        return pa.timestamp("us", t.tz)
    if pa.types.is_large_string(t):
        return pa.string()
    return t
