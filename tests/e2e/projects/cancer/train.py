"""A second, non-credit project for shipml's end-to-end tests: tumour diagnosis.

Gradient-boosted trees on 30 numeric measurements, so nothing in shipml is tuned to the
credit example's linear model, text columns or gzip source. scikit-learn's classic
GradientBoostingClassifier predicts single rows fast and on one thread (the histogram variant
uses OpenMP threads, whose single-row latency suffers on a busy machine); it does not accept
NaN, hence the imputer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline


def train(data: pd.DataFrame, params: dict[str, Any]) -> Pipeline:
    target = params["target"]
    model = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            (
                "boost",
                GradientBoostingClassifier(
                    learning_rate=float(params.get("learning_rate", 0.1)),
                    n_estimators=int(params.get("n_estimators", 100)),
                    max_depth=int(params.get("max_depth", 2)),
                    subsample=float(params.get("subsample", 1.0)),
                    random_state=params.get("seed"),
                ),
            ),
        ]
    )
    return model.fit(data.drop(columns=[target]), data[target])
