"""The positive label is taken as the column holds it: "1" is 1 on integer labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipml.config import load_project
from shipml.errors import ConfigError
from shipml.train.run import split_frame


def project(tmp_path: Path, label: Any) -> Any:
    (tmp_path / "shipml.yaml").write_text(
        f"project: p\ntraining: {{target: y, positive_label: {label}}}\n"
    )
    return load_project(tmp_path, env={})


def frame(labels: list[Any]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=40), "y": labels * 20})


@pytest.mark.parametrize(
    ("label", "labels", "expected"),
    [
        ('"1"', [0, 1], 1),
        ("1", [0, 1], 1),
        ('"0"', [0, 1], 0),
        ("true", ["false", "true"], "true"),
        ("yes", ["no", "yes"], "yes"),
        ('"True"', [False, True], True),
    ],
)
def test_the_positive_label_is_the_columns_value(
    tmp_path: Path, label: str, labels: list[Any], expected: Any
) -> None:
    split = split_frame(project(tmp_path, label), frame(labels))
    assert split.positive_label == expected
    assert type(split.positive_label) is type(expected) or isinstance(expected, int)


def test_a_label_the_column_lacks_names_the_labels_and_their_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'2' \(str\) is not a label of 'y'.*\[0, 1\] \(int\)"):
        split_frame(project(tmp_path, '"2"'), frame([0, 1]))
