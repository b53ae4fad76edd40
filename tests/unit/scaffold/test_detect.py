"""What `shipml init` reads from the data: it decides only where the data leaves one answer."""

from __future__ import annotations

import pandas as pd
import pytest

from shipml.errors import UsageError
from shipml.scaffold.detect import detect


def frame(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_a_target_like_binary_column_and_an_event_label_are_detected_and_explained() -> None:
    data = frame(
        loan_id=[1, 2, 3, 4],
        amount=[1.0, 2.0, 3.0, 4.0],
        state=["CA", "NY", "CA", "TX"],
        term=["36", "60", "36", "36"],
        Class=["good", "bad", "good", "good"],
    )
    found = detect(data)
    assert found.target == "Class" and found.positive_label == "bad"
    assert found.labels == ["bad", "good"]
    assert found.key == "loan_id"
    assert found.numeric == ["amount"] and found.categorical == ["state", "term"]
    assert any("target 'Class'" in n for n in found.notes)
    assert any("positive label 'bad'" in n for n in found.notes)


def test_integer_labels_keep_their_type() -> None:
    found = detect(frame(x=[0.1, 0.2, 0.3], target=[0, 1, 0]))
    assert found.positive_label == 1 and isinstance(found.positive_label, int)


def test_two_candidate_targets_without_a_terminal_name_the_candidates_and_the_flag() -> None:
    data = frame(smoker=["y", "n", "y"], sex=["f", "m", "m"], age=[30, 40, 50])
    with pytest.raises(UsageError, match=r"'smoker', 'sex'.*--target") as err:
        detect(data)
    assert err.value.exit_code == 2


def test_an_unclear_positive_label_names_the_values_and_the_flag() -> None:
    data = frame(x=[1.0, 2.0, 3.0], label=["class_0", "class_1", "class_0"])
    with pytest.raises(UsageError, match=r"'class_0', 'class_1'.*--positive-label"):
        detect(data)


def test_the_prompt_answers_what_the_data_does_not() -> None:
    data = frame(smoker=["y", "n", "y"], sex=["f", "m", "m"])
    asked: list[tuple[str, list[str]]] = []

    def ask(question: str, choices: object) -> str:
        asked.append((question, list(choices)))  # type: ignore[call-overload]
        return list(choices)[-1]  # type: ignore[call-overload]

    found = detect(data, ask=ask)
    assert found.target == "sex" and found.positive_label == "m"
    assert [choices for _, choices in asked] == [["smoker", "sex"], ["f", "m"]]


def test_flags_settle_it_and_a_string_flag_matches_an_integer_label() -> None:
    data = frame(cultivar=[3, 7, 3], x=[1.0, 2.0, 3.0], other=["a", "b", "a"])
    found = detect(data, target="cultivar", positive_label="7")
    assert found.positive_label == 7 and isinstance(found.positive_label, int)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "nope"}, r"--target 'nope' is not a column"),
        ({"target": "grade"}, r"'grade' has 3 distinct values .*not 2"),
        ({"target": "y", "positive_label": "maybe"}, r"'maybe' is not a value of 'y'"),
    ],
)
def test_wrong_flags_are_usage_errors(kwargs: dict[str, str], message: str) -> None:
    data = frame(grade=["a", "b", "c"], y=[0, 1, 1])
    with pytest.raises(UsageError, match=message):
        detect(data, **kwargs)


def test_no_binary_column_is_an_error_naming_the_flag() -> None:
    with pytest.raises(UsageError, match="--target"):
        detect(frame(a=[1, 2, 3], b=["x", "y", "z"]))


def test_the_only_two_valued_column_is_the_target() -> None:
    found = detect(frame(age=[30, 40, 50], plan=["a", "b", "c"], churned=["yes", "no", "no"]))
    assert found.target == "churned" and found.positive_label == "yes"
