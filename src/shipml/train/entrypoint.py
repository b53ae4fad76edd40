"""Load the user's `train(data, params) -> estimator` and hold it to the contract.

The user's code never imports shipml, so every way it can be wrong is explained here, in the
user's terms: which file, which function, what was expected, and how to fix it.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipml.errors import ShipmlError, TrainingContractError, UserCodeError

TrainFn = Callable[[Any, dict[str, Any]], Any]


def project_modules(root: Path) -> list[Path]:
    """The project's top-level Python files: the code a saved model may need to unpickle."""
    return sorted(p for p in root.glob("*.py") if not p.name.startswith(("test_", "conftest")))


@contextmanager
def user_code(what: str, root: Path, log_dir: Path) -> Iterator[None]:
    """Run the project's own code; an exception in it becomes one clear UserCodeError.

    The message names `what` ran, the innermost frame in the project's files (file:line and
    function), the exception, and the file where the whole traceback was saved.
    """
    try:
        yield
    except ShipmlError:
        raise
    except Exception as exc:
        log_dir.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^\w.-]+", "-", what.split("(")[0]).strip("-")
        saved = log_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{slug}.txt"
        saved.write_text("".join(traceback.format_exception(exc)))
        where = _users_frame(exc, root)
        at = f" at {where}" if where else ""
        raise UserCodeError(
            f"{what} raised {type(exc).__name__}: {exc}{at}; full traceback in {saved}"
        ) from None


def _users_frame(exc: BaseException, root: Path) -> str | None:
    """`file:line in function` of the innermost frame inside the project (not its venv)."""
    root = root.resolve()

    def mine(file: str) -> Path | None:
        path = Path(file).resolve()
        outside = not path.is_relative_to(root)
        return None if outside or {"site-packages", ".venv"} & set(path.parts) else path

    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if path := mine(frame.filename):
            found = f"{path.relative_to(root)}:{frame.lineno} in {frame.name}"
    if isinstance(exc, SyntaxError) and exc.filename and (path := mine(exc.filename)):
        found = f"{path.relative_to(root)}:{exc.lineno}"  # the line that does not parse
    return found


def load_train_function(root: Path, entrypoint: str, log_dir: Path) -> TrainFn:
    """Import `module:function` from the project folder and check its signature."""
    module_name, _, func_name = entrypoint.partition(":")
    _forget_other_projects(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    with user_code(f"importing {module_name}.py", root, log_dir):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the module failed on one of its own imports: the user's error
            raise TrainingContractError(
                f"training.entrypoint {entrypoint!r}: no module {module_name!r} in {root}; "
                f"create {module_name}.py there or fix training.entrypoint in shipml.yaml"
            ) from None
    func = getattr(module, func_name, None)
    if func is None:
        names = [
            n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")
        ]
        raise TrainingContractError(
            f"training.entrypoint {entrypoint!r}: {module_name}.py has no function {func_name!r} "
            f"(functions there: {', '.join(names) or 'none'}); define "
            f"`def {func_name}(data, params):` or fix training.entrypoint"
        )
    if not callable(func):
        raise TrainingContractError(
            f"training.entrypoint {entrypoint!r} names a {type(func).__name__}, not a function"
        )
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) != 2:
        found = ", ".join(p.name for p in params) or "none"
        raise TrainingContractError(
            f"{module_name}.{func_name} must take exactly two arguments, (data, params): the "
            f"training DataFrame and the params dict; it takes ({found}). Please change its "
            f"signature to `def {func_name}(data, params):`"
        )
    return func


def check_estimator(model: Any, entrypoint: str) -> None:
    """The returned object must be usable as a fitted probabilistic classifier."""
    if model is None:
        raise TrainingContractError(
            f"{entrypoint} returned None; it must return the fitted estimator "
            f"(did you forget `return model`?)"
        )
    if not callable(getattr(model, "predict_proba", None)):
        raise TrainingContractError(
            f"{entrypoint} returned a {type(model).__name__}, which has no predict_proba; return "
            f"a fitted scikit-learn compatible classifier (e.g. a Pipeline ending in "
            f"LogisticRegression)"
        )


def _forget_other_projects(root: Path) -> None:
    """Drop cached modules named like this project's files but loaded from elsewhere.

    Two projects in one process (tests, notebooks) often both have a `train.py`; without
    this, the second would silently train with the first one's code.
    """
    for path in project_modules(root):
        cached = sys.modules.get(path.stem)
        file = getattr(cached, "__file__", None)
        if cached is not None and (file is None or Path(file).resolve() != path.resolve()):
            del sys.modules[path.stem]
