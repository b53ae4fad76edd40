"""The evaluation report: `evaluation.json` for machines, a self-contained `report.html` for people.

The HTML embeds its four plots (ROC, precision-recall, calibration, confusion matrix) as
base64 PNGs, so it can be attached to a CI run or a model card as one file. Figures are drawn
on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot: nothing is
registered globally, the user's backend is left alone, and figures are freed with the objects.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipml.evaluate.metrics import METRICS, check_arrays

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from shipml.evaluate.result import EvaluationResult

__all__ = ["write_report"]

TEMPLATE = "report.html.j2"


def write_report(
    result: EvaluationResult,
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    out_dir: Path,
    *,
    title: str,
) -> tuple[Path, Path]:
    """Write `evaluation.json` and `report.html` into `out_dir`; return both paths.

    `y_true` (0/1, 1 = positive) and `proba` (positive-class probabilities) are the arrays the
    result was computed from; `metrics.encode_target` and `metrics.positive_proba` give them.
    """
    y, p = check_arrays(y_true, proba)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"title": title, **result.to_dict()}
    json_path = out_dir / "evaluation.json"
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False, default=str) + "\n")

    plots = {
        "ROC curve": _png(_roc(y, p)),
        "Precision-recall curve": _png(_precision_recall(y, p)),
        "Calibration curve": _png(_calibration(y, p)),
        f"Confusion matrix at threshold {result.decision_threshold:g}": _png(
            _confusion(y, p, result.decision_threshold, result.positive_label)
        ),
    }
    html = _render(
        title=title,
        result=result,
        metrics=[(name, _fmt(result, name)) for name in METRICS if name in result.metrics],
        plots=plots,
    )
    html_path = out_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")
    return json_path, html_path


def _render(**context: Any) -> str:
    from importlib.resources import files

    import jinja2

    source = files("shipml.evaluate").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source).render(**context)


def _fmt(result: EvaluationResult, name: str) -> tuple[str, str]:
    """The candidate's and champion's value of one metric, as text."""

    def text(value: float | None) -> str:
        return "—" if value is None or math.isnan(value) else f"{value:.4f}"

    champion = result.champion_metrics
    return text(result.metrics[name]), text(None if champion is None else champion.get(name))


def _figure(title: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4), dpi=100, layout="tight")
    ax = fig.subplots()
    ax.set_title(title)
    return fig, ax


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _one_class(ax: Axes) -> None:
    ax.text(0.5, 0.5, "undefined: the labels hold one class", ha="center", va="center")
    ax.set_axis_off()


def _roc(y: np.ndarray, p: np.ndarray) -> Figure:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _figure("ROC curve")
    if len(set(y.tolist())) < 2:
        _one_class(ax)
        return fig
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate")
    ax.legend(loc="lower right")
    return fig


def _precision_recall(y: np.ndarray, p: np.ndarray) -> Figure:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _figure("Precision-recall curve")
    if len(set(y.tolist())) < 2:
        _one_class(ax)
        return fig
    precision, recall, _ = precision_recall_curve(y, p)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, p):.3f}")
    ax.axhline(y.mean(), linestyle="--", color="grey", label="prevalence")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return fig


def _calibration(y: np.ndarray, p: np.ndarray) -> Figure:
    from sklearn.calibration import calibration_curve

    fig, ax = _figure("Calibration curve")
    if len(set(y.tolist())) < 2:
        _one_class(ax)
        return fig
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.set(xlabel="Mean predicted probability", ylabel="Observed positive rate")
    ax.legend(loc="upper left")
    return fig


def _confusion(y: np.ndarray, p: np.ndarray, threshold: float, positive: object) -> Figure:
    from sklearn.metrics import confusion_matrix

    fig, ax = _figure("Confusion matrix")
    matrix = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    ax.imshow(matrix, cmap="Blues")
    peak = matrix.max() or 1
    for (i, j), count in [((i, j), matrix[i, j]) for i in range(2) for j in range(2)]:
        color = "white" if count > peak / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=14)
    ticks = ["negative", "positive" if positive is None else f"positive ({positive})"]
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=ticks, yticklabels=ticks)
    ax.set(xlabel="Predicted", ylabel="Actual")
    return fig
