"""Property: whatever small frame goes in, `load` gives back exactly that frame."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipml._hashing import sha256_frame
from shipml.data import RawSource, SnapshotStore

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=6)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))

    def column(values: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(values, min_size=n, max_size=n))

    return pd.DataFrame(
        {
            "i": np.array(column(st.integers(-(2**63), 2**63 - 1)), dtype="int64"),
            "i_na": pd.array(column(st.none() | st.integers(-(2**31), 2**31)), dtype="Int64"),
            "f": np.array(column(st.floats(allow_nan=True, allow_infinity=True)), dtype=float),
            "s": pd.Series(column(st.none() | _TEXT), dtype="str"),
            "b": np.array(column(st.booleans()), dtype=bool),
            "b_na": pd.Series(column(st.none() | st.booleans()), dtype=object),
        }
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames())
def test_ingest_then_load_round_trips_exactly(frame: pd.DataFrame) -> None:
    raw = RawSource(frame=frame, uri="generated", format="csv", source_hash="sha256:0")
    with tempfile.TemporaryDirectory() as root:
        store = SnapshotStore(root)
        snap = store.ingest("t", raw).snapshot
        loaded = store.load("t", snap.version)
        again = store.ingest("t", raw)

    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    assert sha256_frame(loaded) == snap.content_hash == sha256_frame(frame)
    assert again.created is False and again.snapshot.version == snap.version
