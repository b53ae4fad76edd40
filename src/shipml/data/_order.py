"""Row order as data: the hidden `_shipml_row` column written at ingest and sorted on read.

Neither Delta writers nor readers promise to keep the order of record batches (delta-rs
reorders a many-chunk Arrow table on write), so the order a snapshot's rows were ingested in
is stored with them: row i of the source has `_shipml_row == i`. A read puts every row back at
its position in O(rows), without a sort, and skips even that when the stored order is already
right (the usual case, since `with_row_column` hands the writer one contiguous chunk).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipml.errors import SnapshotError

if TYPE_CHECKING:
    import pyarrow as pa

ROW_COLUMN = "_shipml_row"


def with_row_column(table: pa.Table, what: str) -> pa.Table:
    """`table` in one chunk per column, with `_shipml_row` (0..n-1) appended."""
    import numpy as np
    import pyarrow as pa

    if ROW_COLUMN in table.column_names:
        raise SnapshotError(
            f"{what} has a column named {ROW_COLUMN!r}, which shipml reserves for the row "
            f"order of a snapshot; rename that column in the source"
        )
    rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return table.combine_chunks().append_column(pa.field(ROW_COLUMN, pa.int64(), False), rows)


def in_row_order(table: pa.Table, column: str, rows: int) -> pa.Table:
    """The rows of a read table put back in ingest order, without the order column.

    Raises SnapshotError unless the column holds each of 0..rows-1 exactly once.
    """
    import numpy as np

    if column not in table.column_names:
        raise SnapshotError(f"the stored table has no row-order column {column!r}")
    index = table.column(column).to_numpy()
    data = table.drop_columns([column])
    if index.dtype.kind != "i":
        raise SnapshotError(f"row-order column {column!r} is {index.dtype}, not integers")
    if len(index) != rows:
        raise SnapshotError(f"the stored table has {len(index)} rows, recorded {rows}")
    if rows == 0 or bool((index == np.arange(rows)).all()):
        return data
    position = np.full(rows, -1, dtype=np.int64)
    inside = (index >= 0) & (index < rows)
    position[index[inside]] = np.nonzero(inside)[0]
    if not inside.all() or bool((position < 0).any()):
        raise SnapshotError(f"column {column!r} does not number the rows 0..{rows - 1} once each")
    return data.take(position)
