from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipml.config import SuggestConfig
from shipml.errors import ConfigError, UsageError
from shipml.validate import suggest_suite, write_suite

from .conftest import ROWS


def by_column(suite: dict, kind: str) -> dict[Any, dict]:
    return {
        e["kwargs"].get("column"): e["kwargs"] for e in suite["expectations"] if e["type"] == kind
    }


def test_suite_is_gx_json_that_gx_loads_back(suite: dict) -> None:
    from great_expectations.core import ExpectationSuite

    loaded = ExpectationSuite(**json.loads(json.dumps(suite)))
    assert loaded.name == "credit"
    assert len(loaded.expectations) == len(suite["expectations"])


def test_table_expectations(suite: dict, reference: pd.DataFrame) -> None:
    (columns,) = by_column(suite, "expect_table_columns_to_match_set").values()
    assert columns["column_set"] == list(reference.columns)
    assert columns.get("exact_match", True) is True  # GX omits its default (True)
    (rows,) = by_column(suite, "expect_table_row_count_to_be_between").values()
    assert (rows["min_value"], rows["max_value"]) == (ROWS // 2, ROWS * 3 // 2)


def test_every_column_exists_with_its_type(suite: dict, reference: pd.DataFrame) -> None:
    assert set(by_column(suite, "expect_column_to_exist")) == set(reference.columns)
    types = {
        c: kw["type_list"]
        for c, kw in by_column(suite, "expect_column_values_to_be_in_type_list").items()
    }
    assert types["grade"] == ["str"]  # pandas 3 `str` dtype
    assert types["verified"] == ["bool"]
    assert "int64" in types["loan_id"] and "float64" not in types["loan_id"]
    assert {"int64", "float64"} <= set(types["annual_inc"])


def test_null_expectations_follow_the_reference(suite: dict, reference: pd.DataFrame) -> None:
    not_null = by_column(suite, "expect_column_values_to_not_be_null")
    assert set(not_null) == set(reference.columns)
    for column in ["loan_id", "annual_inc", "grade", "verified", "bad"]:
        assert not_null[column].get("mostly", 1.0) == 1.0
    observed = reference["emp_length"].isna().mean()
    assert observed > 0.0
    # allowed nulls = observed * (1 + margin) + outlier_tolerance
    assert not_null["emp_length"]["mostly"] == pytest.approx(1 - (observed * 1.1 + 0.01), abs=1e-4)


def test_numeric_ranges_value_sets_and_key(suite: dict, reference: pd.DataFrame) -> None:
    ranges = by_column(suite, "expect_column_values_to_be_between")
    assert set(ranges) == {"annual_inc", "emp_length"}  # not the key, not the label
    inc = ranges["annual_inc"]
    assert inc["mostly"] == pytest.approx(0.99)
    assert inc["min_value"] < reference["annual_inc"].quantile(0.001)
    assert inc["max_value"] > reference["annual_inc"].quantile(0.999)
    sets = by_column(suite, "expect_column_values_to_be_in_set")
    assert sets["grade"]["value_set"] == ["A", "B", "C", "D"]
    assert sets["verified"]["value_set"] == [False, True]
    assert sets["bad"]["value_set"] == [0, 1]  # the label gets a set although numeric
    assert set(by_column(suite, "expect_column_values_to_be_unique")) == {"loan_id"}


def test_every_expectation_says_how_it_was_derived(suite: dict) -> None:
    for e in suite["expectations"]:
        assert e.get("notes"), e["type"]
        assert e["meta"]["shipml"]["rule"], e["type"]
    assert suite["meta"]["shipml"]["reference_rows"] == ROWS
    assert suite["meta"]["shipml"]["reference_sha256"].startswith("sha256:")


def test_range_is_quantiles_widened_by_margin_of_span() -> None:
    frame = pd.DataFrame({"x": np.linspace(0.0, 100.0, 101)})
    settings = SuggestConfig(quantile=0.0, margin=0.1, outlier_tolerance=0.05)
    (kw,) = by_column(
        suggest_suite(frame, name="s", settings=settings), "expect_column_values_to_be_between"
    ).values()
    assert (kw["min_value"], kw["max_value"], kw["mostly"]) == (-10.0, 110.0, 0.95)


def test_value_set_only_up_to_max_categories() -> None:
    frame = pd.DataFrame({"few": ["a", "b"] * 20, "many": [f"v{i}" for i in range(40)]})
    suite = suggest_suite(frame, name="s", settings=SuggestConfig(max_categories=30))
    assert set(by_column(suite, "expect_column_values_to_be_in_set")) == {"few"}


def test_object_dtype_text_is_typed_as_str() -> None:
    frame = pd.DataFrame({"t": pd.Series(["x", "y", None], dtype=object)})
    types = by_column(
        suggest_suite(frame, name="s", settings=SuggestConfig()),
        "expect_column_values_to_be_in_type_list",
    )
    assert types["t"]["type_list"] == ["str"]


def test_written_file_is_sorted_pretty_and_byte_identical(
    reference: pd.DataFrame, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "nested" / "b.json"
    for path in (first, second):
        write_suite(
            suggest_suite(reference, name="credit", settings=SuggestConfig(), key="loan_id"), path
        )
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert text.endswith("}\n") and "\n  " in text
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_unknown_key_or_target_is_a_config_error(reference: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"data\.key column 'nope'"):
        suggest_suite(reference, name="s", settings=SuggestConfig(), key="nope")
    with pytest.raises(ConfigError, match=r"training\.target column 'label'"):
        suggest_suite(reference, name="s", settings=SuggestConfig(), target="label")


def test_empty_reference_is_refused(reference: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="empty reference snapshot"):
        suggest_suite(reference.iloc[0:0], name="s", settings=SuggestConfig())


def test_range_never_rejects_its_own_reference() -> None:
    frame = pd.DataFrame({"x": [0] * 10 + [2]})  # one of 11 beyond the 0.1..0.9 quantiles
    settings = SuggestConfig(quantile=0.1, margin=0.1, outlier_tolerance=0.01)
    (kw,) = by_column(
        suggest_suite(frame, name="s", settings=settings), "expect_column_values_to_be_between"
    ).values()
    inside = frame["x"].between(kw["min_value"], kw["max_value"]).mean()
    assert inside < 0.99 and kw["mostly"] <= inside
