"""Unit tests of the preprocessing in features.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from features import (
    CATEGORICAL,
    ENGINEERED,
    NUMERIC,
    build_preprocessor,
    emp_years,
    grade_rank,
    prepare,
)
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("code", "years"),
    [("emp_lt_1", 0.5), ("emp_1", 1.0), ("emp_9", 9.0), ("emp_ge_10", 10.0)],
)
def test_emp_years_parses_the_codes(code: str, years: float) -> None:
    assert emp_years(code) == years


@pytest.mark.parametrize("code", ["emp_unk", "", "10 years", None, float("nan"), 3])
def test_emp_years_is_nan_when_unknown(code: object) -> None:
    assert math.isnan(emp_years(code))


@given(st.one_of(st.text(), st.none(), st.floats(), st.integers()))
def test_emp_years_never_raises(value: object) -> None:
    years = emp_years(value)
    assert math.isnan(years) or years >= 0


@pytest.mark.parametrize(("grade", "rank"), [("A1", 0), ("A5", 4), ("B1", 5), ("G5", 34)])
def test_grade_rank_orders_sub_grades(grade: str, rank: int) -> None:
    assert grade_rank(grade) == rank


@pytest.mark.parametrize("grade", ["H1", "A6", "A", "a1x", None, float("nan")])
def test_grade_rank_is_nan_when_invalid(grade: object) -> None:
    assert math.isnan(grade_rank(grade))


def test_prepare_types_and_engineers(features: pd.DataFrame) -> None:
    out = prepare(features.head(50))
    assert list(out.columns) == [*NUMERIC, *ENGINEERED, *CATEGORICAL]
    assert all(pd.api.types.is_float_dtype(t) for t in out[[*NUMERIC, *ENGINEERED]].dtypes)
    assert out.index.equals(features.head(50).index)
    assert out["grade_rank"].between(0, 34).all()


def test_prepare_names_missing_columns(features: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="int_rate"):
        prepare(features.drop(columns=["int_rate"]))


def test_preprocessor_outputs_finite_values_when_every_cell_is_missing(
    features: pd.DataFrame,
) -> None:
    pre = build_preprocessor().fit(features)
    empty = pd.DataFrame({c: [np.nan, None] for c in features.columns})
    matrix = pre.transform(empty)
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    assert matrix.shape == (2, len(pre.get_feature_names_out()))
    assert np.isfinite(matrix).all()


def test_preprocessor_ignores_unseen_categories_and_text_in_numbers(
    features: pd.DataFrame,
) -> None:
    pre = build_preprocessor().fit(features)
    odd = features.head(3).astype(object)
    odd["addr_state"] = "ZZ"
    odd["term"] = "term_120"
    odd["int_rate"] = "not a number"
    matrix = pre.transform(odd)
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    assert np.isfinite(matrix).all()
