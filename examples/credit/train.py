"""Train the credit-risk model: `train(data, params)` is the entrypoint named in shipml.yaml.

An L2-regularised logistic regression on the features of `features.py`. It is not reweighted
for the ~5% of bad loans, so its probabilities stay calibrated; shipml.yaml sets the decision
threshold (the default probability at which a loan is declined) instead.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from features import build_preprocessor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline


def train(data: pd.DataFrame, params: dict[str, Any]) -> Pipeline:
    """Fit on `data` (features and the target column) and return the fitted pipeline.

    `params` is training.params from shipml.yaml plus `target` and `seed`.
    """
    target = params["target"]
    model = Pipeline(
        [
            ("features", build_preprocessor()),
            (
                "classifier",
                LogisticRegression(
                    C=float(params.get("C", 0.1)),
                    max_iter=int(params.get("max_iter", 2000)),
                    random_state=params.get("seed"),
                ),
            ),
        ]
    )
    return model.fit(data.drop(columns=[target]), data[target])
