"""What `shipml init` reads from a first look at the data: target, positive label, key, columns.

Detection decides only when the data leaves one answer (a single binary column with a
target-like name; a single label that names the event). Anything else is a question: `ask`
(a prompt, when there is a terminal) answers it, or a UsageError names the candidates and the
flag that settles it. Nothing is guessed silently; every decision is explained in `notes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipml.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

Ask = Callable[[str, Sequence[str]], str]
"""(question, choices) -> one of the choices."""

TARGET_NAMES = {"target", "label", "labels", "class", "y", "outcome", "response"}
# Label values that name the event a binary classifier predicts.
EVENT_LABELS = {
    "1", "true", "yes", "y", "positive", "pos", "bad", "default", "defaulted", "fraud",
    "churn", "churned", "malignant", "spam", "sick", "disease", "failure", "fail", "event",
}  # fmt: skip
KEY_NAMES = {"id", "key", "uuid"}
MAX_TEXT_LEVELS = 100  # a text column with more distinct values is free text or an id


@dataclass(frozen=True)
class Detected:
    target: str
    positive_label: Any
    labels: list[Any]
    key: str | None
    numeric: list[str]
    categorical: list[str]
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def detect(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    positive_label: str | None = None,
    ask: Ask | None = None,
) -> Detected:
    notes: list[str] = []
    column = _target(frame, target, ask, notes)
    labels = _labels(frame[column], column)
    positive = _positive(labels, column, positive_label, ask, notes)
    key = _key(frame, exclude=column)
    dropped: list[str] = []
    if key is not None:
        notes.append(f"key {key!r}: unique on every row; checked unique, never a model input")
    numeric, categorical = [], []
    for name in map(str, frame.columns):
        if name in (column, key):
            continue
        series = frame[name]
        kind = series.dtype.kind
        if kind in "iuf":
            numeric.append(name)
        elif kind in "mM":
            dropped.append(name)
            notes.append(f"column {name!r} is a date/time: left out of the model (engineer it)")
        elif series.nunique() > MAX_TEXT_LEVELS and series.nunique() > len(series) // 2:
            dropped.append(name)
            notes.append(f"column {name!r} looks like free text or an id: left out of the model")
        else:
            categorical.append(name)
    return Detected(column, positive, labels, key, numeric, categorical, dropped, notes)


def _target(frame: pd.DataFrame, target: str | None, ask: Ask | None, notes: list[str]) -> str:
    columns = [str(c) for c in frame.columns]
    if target is not None:
        if target not in columns:
            raise UsageError(
                f"--target {target!r} is not a column of the data (columns: "
                f"{', '.join(columns)}); pass one of them"
            )
        notes.append(f"target {target!r}: given with --target")
        return target
    binary = [c for c in columns if frame[c].notna().all() and frame[c].nunique() == 2]
    named = [c for c in binary if c.lower() in TARGET_NAMES]
    if len(named) == 1:
        notes.append(f"target {named[0]!r}: the one two-valued column with a target-like name")
        return named[0]
    if not named and len(binary) == 1:
        notes.append(f"target {binary[0]!r}: the only two-valued column (shipml is binary)")
        return binary[0]
    candidates = named or binary
    if not candidates:
        raise UsageError(
            "no column has exactly two values and no missing ones, so there is no binary "
            "target to detect; pass --target COLUMN (shipml trains binary classifiers)"
        )
    if ask is not None:
        choice = ask("Which column is the target (the label to predict)?", candidates)
        notes.append(f"target {choice!r}: chosen at the prompt")
        return choice
    raise UsageError(
        f"cannot tell which column is the target: candidates {', '.join(map(repr, candidates))}; "
        f"pass --target COLUMN"
    )


def _labels(series: pd.Series, column: str) -> list[Any]:
    values = [v.item() if hasattr(v, "item") else v for v in series.dropna().unique()]
    if series.isna().any():
        raise UsageError(
            f"target {column!r} has {int(series.isna().sum())} missing values; drop those rows "
            f"from the data or pick another --target"
        )
    if len(values) != 2:
        shown = ", ".join(map(repr, sorted(values, key=str)[:10]))
        raise UsageError(
            f"target {column!r} has {len(values)} distinct values ({shown}"
            f"{', ...' if len(values) > 10 else ''}), not 2: shipml trains binary classifiers; "
            f"derive a two-valued label column or pick another --target"
        )
    return sorted(values, key=lambda v: (str(type(v)), v))


def _positive(
    labels: list[Any], column: str, given: str | None, ask: Ask | None, notes: list[str]
) -> Any:
    shown = ", ".join(map(repr, labels))
    if given is not None:
        for label in labels:
            if given == label or given == str(label) or given.lower() == str(label).lower():
                notes.append(f"positive label {label!r}: given with --positive-label")
                return label
        raise UsageError(
            f"--positive-label {given!r} is not a value of {column!r} (values: {shown}); "
            f"pass one of them"
        )
    events = [v for v in labels if str(v).lower() in EVENT_LABELS]
    if len(events) == 1:
        why = (
            "the usual code of the event"
            if str(events[0]) in ("1", "True")
            else "it names the event"
        )
        notes.append(f"positive label {events[0]!r} of {shown}: {why}")
        return events[0]
    if ask is not None:
        question = f"Which value of {column!r} is the event to predict?"
        choice = ask(question, [str(v) for v in labels])
        label = next(v for v in labels if str(v) == choice)
        notes.append(f"positive label {label!r}: chosen at the prompt")
        return label
    raise UsageError(
        f"cannot tell which value of {column!r} is the positive class (values: {shown}); "
        f"pass --positive-label VALUE"
    )


def _key(frame: pd.DataFrame, exclude: str) -> str | None:
    for name in map(str, frame.columns):
        lower = name.lower()
        if name == exclude or not (lower in KEY_NAMES or lower.endswith(("_id", "_key"))):
            continue
        series = frame[name]
        if series.notna().all() and series.is_unique:
            return name
    return None
