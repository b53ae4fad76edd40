"""Property tests against a real `shipml serve` process, over loopback.

Any row the signature allows gets probabilities in [0, 1]; any row that breaks it gets a 4xx.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.serve.conftest import Served, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(model_dir: Path, credit_project: Path) -> Iterator[Served]:
    served = start_server(model_dir, credit_project)
    yield served
    served.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def client(server: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def row_strategy(rows: pd.DataFrame) -> st.SearchStrategy[dict[str, Any]]:
    """Rows the signature allows: ints for long columns, floats for doubles, any text for
    strings (seen or unseen categories), and null anywhere (serve.missing_values: allow)."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, dtype in rows.dtypes.items():
        if pd.api.types.is_integer_dtype(dtype):
            low, high = int(rows[name].min()), int(rows[name].max())
            value: st.SearchStrategy[Any] = st.integers(low - 10, 2 * high + 10)
        elif pd.api.types.is_float_dtype(dtype):
            low_f, high_f = float(rows[name].min()), float(rows[name].max())
            value = st.floats(low_f - 1, 2 * high_f + 1, allow_nan=False)
        else:
            value = st.sampled_from(sorted(rows[name].dropna().unique())) | st.text(max_size=12)
        fields[str(name)] = value | st.none()
    return st.fixed_dictionaries(fields)


WRONG = st.one_of(
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_valid_rows_always_get_probabilities(
    client: httpx.Client, rows: pd.DataFrame, data: st.DataObject
) -> None:
    batch = data.draw(st.lists(row_strategy(rows), min_size=1, max_size=5))
    r = client.post("/invocations", json={"dataframe_records": batch})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert len(predictions) == len(batch)
    assert all(0.0 <= p <= 1.0 for p in predictions)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_invalid_rows_always_get_4xx(
    client: httpx.Client, rows: pd.DataFrame, data: st.DataObject
) -> None:
    row = data.draw(row_strategy(rows))
    column = data.draw(st.sampled_from(sorted(row)))
    numeric = pd.api.types.is_numeric_dtype(rows[column].dtype)
    how = data.draw(st.sampled_from(["wrong type", "structure", "drop", "extra"]))
    if how == "wrong type":
        row[column] = (
            data.draw(st.text(min_size=1, max_size=8))
            if numeric
            else data.draw(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
        )
    elif how == "structure":
        row[column] = data.draw(WRONG)
    elif how == "drop":
        del row[column]
    else:
        row[f"not_{column}"] = 1
    r = client.post("/invocations", json={"dataframe_records": [row]})
    assert 400 <= r.status_code < 500, (how, column, r.status_code, r.text)
    assert r.json()["error"]["code"]
