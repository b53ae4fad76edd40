"""The registration record and the file-by-file check every load goes through."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipml._hashing import tree_manifest
from shipml.errors import ModelIntegrityError
from shipml.registry.manifest import Record, manifest_text, parse_manifest, verify
from tests._models import record_of


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "code").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "model.skops").write_bytes(b"\x00weights\x01")
    (root / "code" / "features.py").write_text("def prepare(x):\n    return x\n")
    (root / "code" / "helpers.py").write_text("X = 1\n")
    return root


def test_an_intact_folder_passes_and_returns_the_bytes_it_checked(folder: Path) -> None:
    record = record_of(folder)
    assert verify(folder, record, keep=["model.skops"]) == {"model.skops": b"\x00weights\x01"}


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda f: (f / "model.skops").write_bytes(b"\x00weightz\x01"), "changed: model.skops"),
        (lambda f: (f / "code" / "helpers.py").unlink(), "missing: code/helpers.py"),
        (
            lambda f: (f / "code" / "evil.py").write_text("import os\n"),
            "not registered: code/evil.py",
        ),
        (
            lambda f: (
                (f / "code" / "__pycache__").mkdir()
                or (f / "code" / "__pycache__" / "features.cpython-311.pyc").write_bytes(b"\x00")
            ),
            "not registered: code/__pycache__/features.cpython-311.pyc",
        ),
    ],
    ids=["one-byte", "missing", "extra", "stray-bytecode"],
)
def test_any_difference_is_refused_naming_the_file(folder: Path, damage, named: str) -> None:  # type: ignore[no-untyped-def]
    record = record_of(folder, "credit", "3")
    damage(folder)
    with pytest.raises(ModelIntegrityError) as refused:
        verify(folder, record)
    message = str(refused.value)
    assert (
        named in message and "model credit:3" in message and "nothing of it was loaded" in message
    )


def test_a_symlink_is_refused(folder: Path, tmp_path: Path) -> None:
    record = record_of(folder)
    (folder / "code" / "helpers.py").unlink()
    (tmp_path / "elsewhere.py").write_text("X = 1\n")
    (folder / "code" / "helpers.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(ModelIntegrityError, match=r"changed: code/helpers\.py"):
        verify(folder, record)


def test_a_record_round_trips_and_an_inconsistent_one_is_refused(
    folder: Path, tmp_path: Path
) -> None:
    record = record_of(folder, "credit", "3")
    record.save(tmp_path / "record.json")
    assert Record.load(tmp_path / "record.json") == record
    forged = dataclasses.replace(record, manifest={**record.manifest, "model.skops": "0" * 64})
    with pytest.raises(ModelIntegrityError, match="does not hash to its recorded hash"):
        Record.from_dict(forged.to_dict())  # the hash authenticates the manifest
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ModelIntegrityError, match="is not a registration record"):
        Record.load(tmp_path / "bad.json")


def test_the_manifest_text_of_a_folder_survives_parsing(folder: Path) -> None:
    text = tree_manifest(folder)
    assert manifest_text(parse_manifest(text)) == text


@given(
    st.dictionaries(
        st.text(
            st.characters(blacklist_characters="\n\r\\", blacklist_categories=["Cs"]), min_size=1
        ).filter(lambda p: p.strip() == p and "  " not in p),
        st.text("0123456789abcdef", min_size=64, max_size=64),
        max_size=8,
    )
)
def test_manifest_text_and_parse_are_inverse(manifest: dict[str, str]) -> None:
    assert parse_manifest(manifest_text(manifest)) == manifest
