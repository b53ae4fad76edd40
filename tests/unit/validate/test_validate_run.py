from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipml.config import SuggestConfig
from shipml.errors import ConfigError
from shipml.validate import ValidationReport, suggest_suite, validate, write_suite


def run(frame: pd.DataFrame, suite_path: Path, tmp_path: Path, label: str = "credit@3"):
    return validate(frame, suite_path, docs_dir=tmp_path / "docs", label=label)


def failures_on(report: ValidationReport, column: str) -> list:
    return [f for f in report.failures if f.column == column]


def test_clean_frame_passes_and_builds_docs(
    frame: pd.DataFrame, suite: dict, suite_path: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = run(frame, suite_path, tmp_path)
    assert report.success, report.failures
    assert report.failures == []
    assert (report.suite, report.label) == ("credit", "credit@3")
    assert report.evaluated == len(suite["expectations"])
    assert report.docs_path.parent == (tmp_path / "docs" / "runs").resolve()
    assert "credit@3" in report.docs_path.read_text()
    assert "credit@3" in (tmp_path / "docs" / "index.html").read_text()  # Data Docs too
    assert list(tmp_path.iterdir()) == [tmp_path / "docs"]  # nothing written outside docs_dir
    assert report.gx_seconds > 0
    assert json.loads(json.dumps(report.to_dict()))["success"] is True


def test_index_keeps_earlier_runs(frame: pd.DataFrame, suite_path: Path, tmp_path: Path) -> None:
    run(frame, suite_path, tmp_path, label="credit@1")
    run(frame, suite_path, tmp_path, label="credit@2")
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "credit@1" in index and "credit@2" in index
    assert (tmp_path / "docs" / "expectations" / "credit.html").is_file()


def test_missing_column_is_one_readable_failure(
    frame: pd.DataFrame, suite_path: Path, tmp_path: Path
) -> None:
    report = run(frame.drop(columns=["annual_inc"]), suite_path, tmp_path)
    assert not report.success
    (missing,) = failures_on(report, "annual_inc")  # not one per check on that column
    assert missing.expectation == "expect_column_to_exist"
    assert "column 'annual_inc' is missing" in missing.reason
    (table,) = [f for f in report.failures if f.column is None]
    assert "missing 'annual_inc'" in table.reason


def test_strings_in_numeric_column_fail_its_type(
    frame: pd.DataFrame, suite_path: Path, tmp_path: Path
) -> None:
    frame["annual_inc"] = frame["annual_inc"].astype(str)  # pandas 3: `str` dtype
    frame.loc[0, "annual_inc"] = "n/a"
    report = run(frame, suite_path, tmp_path)
    assert not report.success
    typed = failures_on(report, "annual_inc")[0]
    assert typed.expectation == "expect_column_values_to_be_in_type_list"
    assert "column 'annual_inc'" in typed.reason and "type str" in typed.reason
    assert "expected a number" in typed.reason
    assert typed.samples[0] == "n/a" and len(typed.samples) == 5


def test_five_percent_nulls_in_required_column(
    frame: pd.DataFrame, suite_path: Path, tmp_path: Path
) -> None:
    frame.loc[frame.index[:10], "annual_inc"] = np.nan  # 10 of 200 rows
    report = run(frame, suite_path, tmp_path)
    assert not report.success
    (nulls,) = failures_on(report, "annual_inc")
    assert nulls.reason == (
        "column 'annual_inc': 5.0% nulls, expected none (expect_column_values_to_not_be_null)"
    )


def test_values_outside_set_and_range_name_samples(
    frame: pd.DataFrame, suite_path: Path, tmp_path: Path
) -> None:
    frame.loc[frame.index[:4], "grade"] = "Z"
    frame.loc[frame.index[:6], "emp_length"] = 99.0
    report = run(frame, suite_path, tmp_path)
    (grade,) = failures_on(report, "grade")
    assert grade.samples == ["Z"] and "not in the expected set of 4" in grade.reason
    assert "e.g. 'Z'" in grade.reason  # the offending value, named
    (emp,) = failures_on(report, "emp_length")
    assert emp.samples == [99.0] and "3.3% of values outside" in emp.reason


def test_extension_dtypes_validate_against_their_own_suite(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3, 4] * 10, dtype="Int64"),
            "b": pd.array([True, False, None, True] * 10, dtype="boolean"),
            "c": pd.Categorical(["x", "y", "x", "z"] * 10),
            "s": pd.array(["p", "q", None, "r"] * 10, dtype="string"),
            "t": pd.date_range("2024-01-01", periods=40, tz="UTC"),
        }
    )
    path = tmp_path / "suite.json"
    write_suite(suggest_suite(frame, name="ext", settings=SuggestConfig()), path)
    report = run(frame, path, tmp_path)
    assert report.success, [f.reason for f in report.failures]


def test_missing_suite_file_says_how_to_create_it(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "expectations" / "suite.json"
    with pytest.raises(ConfigError) as err:
        run(frame, path, tmp_path)
    assert str(path) in str(err.value) and "shipml expectations suggest" in str(err.value)
    assert not (tmp_path / "docs").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["a list"]', "is not a Great Expectations suite"),
        ('{"name": "s", "expectations": {}}', "is not a Great Expectations suite"),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": '
            '{"column": "a"}}, {"type": "expect_pigs_to_fly", "kwargs": {}}]}',
            "expectation #2 (expect_pigs_to_fly) is not valid",
        ),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_values_to_be_between", '
            '"kwargs": {"min_value": 1}}]}',
            "expectation #1 (expect_column_values_to_be_between) is not valid",
        ),
    ],
)
def test_invalid_suite_file_is_a_config_error(
    frame: pd.DataFrame, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "suite.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="expectation suite") as err:
        run(frame, path, tmp_path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_importing_run_does_not_import_gx_or_pandas() -> None:
    code = (
        "import sys, shipml.validate, shipml.validate.run; "
        "print(any(m.split('.')[0] in ('great_expectations', 'pandas') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
