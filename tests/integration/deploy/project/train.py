"""A logistic regression, wrapped so that a test can ask for a candidate with one fault."""

from faults import Faulty
from sklearn.linear_model import LogisticRegression


def train(data, params):
    X, y = data.drop(columns=[params["target"]]), data[params["target"]]
    return Faulty(LogisticRegression(), fault=params.get("fault", "none")).fit(X, y)
