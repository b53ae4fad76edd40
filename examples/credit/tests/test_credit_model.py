"""Properties of the trained model, checked on generated loan applications."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TERMS = ["term_36", "term_60", "term_120"]  # the last one never occurs in the data
STATES = ["CA", "NY", "TX", "WY", "ZZ"]
VERIFICATION = ["Verified", "Source_Verified", "Not_Verified"]
EMPLOYMENT = ["emp_lt_1", "emp_3", "emp_ge_10", "emp_unk", "emp_??"]
GRADES = ["A1", "C4", "G5", "H9"]
COUNTS = [
    "delinq_2yrs",
    "inq_last_6mths",
    "acc_now_delinq",
    "open_il_6m",
    "open_il_12m",
    "open_il_24m",
    "all_util",
    "inq_fi",
    "inq_last_12m",
    "delinq_amnt",
    "num_il_tl",
]


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(strategy, st.none())


money = st.floats(min_value=0, max_value=2_000_000, allow_nan=False)
row = st.fixed_dictionaries(
    {
        "funded_amnt": _maybe(money),
        "term": _maybe(st.sampled_from(TERMS)),
        "int_rate": _maybe(st.floats(min_value=0, max_value=40)),
        "sub_grade": _maybe(st.sampled_from(GRADES)),
        "addr_state": _maybe(st.sampled_from(STATES)),
        "verification_status": _maybe(st.sampled_from(VERIFICATION)),
        "annual_inc": _maybe(money),
        "emp_length": _maybe(st.sampled_from(EMPLOYMENT)),
        "revol_util": _maybe(st.floats(min_value=0, max_value=200)),
        "total_bal_il": _maybe(money),
        "total_il_high_credit_limit": _maybe(money),
        **{c: _maybe(st.integers(min_value=0, max_value=100)) for c in COUNTS},
    }
)
applications = st.lists(row, min_size=1, max_size=10).map(pd.DataFrame)
fast = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_train_returns_a_fitted_classifier(model) -> None:
    assert callable(model.predict_proba)
    assert sorted(model.classes_) == ["bad", "good"]


def test_model_ranks_loans_better_than_chance(model, loans: pd.DataFrame) -> None:
    from sklearn.metrics import roc_auc_score

    bad = list(model.classes_).index("bad")
    proba = model.predict_proba(loans.drop(columns=["Class"]))[:, bad]
    assert roc_auc_score(loans["Class"] == "bad", proba) > 0.7


@fast
@given(applications)
def test_probabilities_are_valid(model, frame: pd.DataFrame) -> None:
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame), 2)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@fast
@given(applications)
def test_same_input_same_output(model, frame: pd.DataFrame) -> None:
    np.testing.assert_array_equal(model.predict_proba(frame), model.predict_proba(frame.copy()))


@fast
@given(applications, st.randoms(use_true_random=False))
def test_column_order_does_not_matter(model, frame: pd.DataFrame, rng) -> None:
    columns = list(frame.columns)
    rng.shuffle(columns)
    np.testing.assert_allclose(model.predict_proba(frame[columns]), model.predict_proba(frame))


@fast
@given(applications)
def test_each_row_is_scored_on_its_own(model, frame: pd.DataFrame) -> None:
    batch = model.predict_proba(frame)
    single = np.vstack([model.predict_proba(frame.iloc[[i]]) for i in range(len(frame))])
    np.testing.assert_allclose(batch, single, rtol=1e-9, atol=1e-12)
