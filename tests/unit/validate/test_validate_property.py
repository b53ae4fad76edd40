from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shipml.config import SuggestConfig
from shipml.validate import suggest_suite, validate, write_suite

ROWS = st.integers(min_value=1, max_value=25)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(ROWS)
    kinds = draw(st.lists(st.sampled_from(["int", "float", "str", "bool"]), min_size=1, max_size=4))
    data: dict[str, pd.Series] = {}
    for i, kind in enumerate(kinds):
        if kind == "int":
            values: list = draw(
                st.lists(st.integers(-(10**12), 10**12), min_size=rows, max_size=rows)
            )
        elif kind == "float":
            finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
            values = draw(st.lists(finite | st.none(), min_size=rows, max_size=rows))
        elif kind == "str":
            text = st.text(max_size=5)
            values = draw(st.lists(text | st.none(), min_size=rows, max_size=rows))
        else:
            values = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
        data[f"c{i}_{kind}"] = pd.Series(values, dtype="str" if kind == "str" else None)
    return pd.DataFrame(data)


@pytest.mark.slow
# Each example runs GX (~1 s); shrinking a failure could take minutes, so it is skipped.
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(frame=frames(), quantile=st.sampled_from([0.0, 0.001, 0.1]))
def test_a_frame_validates_against_the_suite_suggested_from_it(
    frame: pd.DataFrame, quantile: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.json"
        suite = suggest_suite(
            frame, name="prop", settings=SuggestConfig(quantile=quantile), key=None
        )
        write_suite(suite, path)
        report = validate(frame, path, docs_dir=Path(tmp) / "docs", label="prop@1")
    assert report.success, [f.reason for f in report.failures]
    assert report.evaluated == len(suite["expectations"])
