"""The test base image's Debian mirror comes from the machine's apt sources, not the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._services.buildah import MIRROR_ENV, debian_mirror


def test_mirror_from_deb822_and_one_line_sources(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror("bookworm", tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://other.example/debian bookworm main\n"
    )
    assert debian_mirror("bookworm", tmp_path) == "http://other.example/debian"
    with pytest.raises(RuntimeError, match=MIRROR_ENV):
        debian_mirror("trixie", tmp_path)
    monkeypatch.setenv(MIRROR_ENV, "http://set.example/debian")
    assert debian_mirror("trixie", tmp_path) == "http://set.example/debian"
