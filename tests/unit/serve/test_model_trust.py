"""`serve.model.load`: nothing in a model folder runs before it is verified, pickles only on
request, and each loaded version runs its own `code/`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from shipml.errors import ModelIntegrityError
from shipml.serve.inputs import Batch
from shipml.serve.model import Source, load
from tests._models import feature_model, hostile_code, hostile_pickle, record_of


def one_row() -> Batch:
    return Batch({n: np.array([0.0]) for n in ("x1", "x2", "x3")}, 1)


@pytest.mark.parametrize("kind", ["pickle", "code"])
def test_a_folder_without_a_record_runs_nothing(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = (
        hostile_pickle(tmp_path / "m", marker)
        if kind == "pickle"
        else hostile_code(tmp_path / "m", marker, tmp_path / "scratch")
    )
    with pytest.raises(ModelIntegrityError, match=r"no registration record.*--trust-folder"):
        load(Source(folder, "m", "1", None), allow_pickle=True)
    assert not marker.exists()


def test_a_pickle_is_refused_unless_the_project_opts_in(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = hostile_pickle(tmp_path / "m", marker)
    for source in (Source.registered(folder, record_of(folder)), Source.trusted_folder(folder)):
        with pytest.raises(ModelIntegrityError, match=r"cloudpickle.*serve\.allow_pickle: true"):
            load(source)
        assert not marker.exists()
    opened = load(Source.registered(folder, record_of(folder)), allow_pickle=True).estimator
    opened.close()  # what it unpickled: a file it opened, for writing
    assert marker.exists()  # the folder is truly hostile: opting in runs it


def test_a_changed_byte_is_refused_before_its_code_is_imported(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = hostile_code(tmp_path / "m", marker, tmp_path / "scratch")
    evil = folder / "code" / "evil.py"
    honest = evil.read_text().replace(f"Path({str(marker)!r}).touch()\n", "")
    evil.write_text(honest)
    record = record_of(folder, "credit", "4")  # registered with harmless code ...
    evil.write_text(
        honest.replace(
            "import numpy", f"from pathlib import Path\nPath({str(marker)!r}).touch()\nimport numpy"
        )
    )  # ... then edited
    with pytest.raises(ModelIntegrityError, match=r"model credit:4 .*changed: code/evil\.py"):
        load(Source.registered(folder, record))
    assert not marker.exists()


def test_trusted_types_come_from_the_record_not_the_folder(tmp_path: Path) -> None:
    folder = feature_model(tmp_path / "m", 0.25, tmp_path / "scratch")
    record = record_of(folder)
    stingy = type(record)(**{**record.__dict__, "trusted_types": ()})
    with pytest.raises(Exception, match=r"features\.Model"):  # skops: untrusted type
        load(Source.registered(folder, stingy))
    assert load(Source.registered(folder, record)).predict(one_row())[0] == 0.25


def test_two_versions_each_run_their_own_feature_code(tmp_path: Path) -> None:
    before = sys.modules.get("features")
    one = feature_model(tmp_path / "v1", 0.2, tmp_path / "s1")
    two = feature_model(tmp_path / "v2", 0.7, tmp_path / "s2")
    a = load(Source.registered(one, record_of(one, version="1")))
    b = load(Source.registered(two, record_of(two, version="2")))
    again = load(Source.registered(one, record_of(one, version="1")))
    assert a.predict(one_row())[0] == pytest.approx(0.2)
    assert b.predict(one_row())[0] == pytest.approx(0.7)
    assert again.predict(one_row())[0] == pytest.approx(0.2)
    assert sys.modules.get("features") is before  # no plain name leaked into sys.modules
    assert str(one / "code") not in sys.path and str(two / "code") not in sys.path
    assert not list(tmp_path.glob("v*/code/__pycache__"))  # nothing written into the folders
