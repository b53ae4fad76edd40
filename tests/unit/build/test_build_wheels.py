"""Host-side wheels: pinned by the training run's lock, for the image's platform, cached."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipml.build import wheels as w
from shipml.errors import BuildError

LOCK = "mlflow==3.1.0\nnumpy==2.0.1\nPip==26.3\nshipml==0.1.0\nscikit_learn==1.5.2\n"


class FakePip:
    """Records pip's arguments and does what `pip download` would: put wheels in --dest."""

    def __init__(self, downloads: list[str]) -> None:
        self.downloads = downloads
        self.calls: list[list[str]] = []
        self.constraints: list[str] = []

    def __call__(self, args: list[str], what: str) -> None:
        self.calls.append(args)
        if args[0] == "wheel":
            out = Path(args[args.index("--wheel-dir") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "shipml-0.1.0-py3-none-any.whl").write_bytes(b"shipml wheel")
            return
        dest = Path(args[args.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        if "--constraint" in args:
            self.constraints = Path(args[args.index("--constraint") + 1]).read_text().split()
            names = self.downloads
        else:
            names = [f"{args[-1].replace('==', '-')}-py3-none-any.whl"]
        for name in names:
            (dest / name).write_bytes(name.encode())


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / "src" / "shipml").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'shipml'\n")
    (root / "src" / "shipml" / "__init__.py").write_text("__version__ = '0.1.0'\n")
    monkeypatch.setattr(w, "_source_tree", lambda: root)
    return root


DOWNLOADS = [
    "numpy-2.0.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.whl",
    "shipml-0.1.0-py3-none-any.whl",
]


def resolve(cache: Path, pip: FakePip, wheelhouse: Path | None = None) -> w.Wheelhouse:
    return w.resolve_wheels(
        LOCK, cache, python="3.11", glibc="2.36", arch="x86_64", wheelhouse=wheelhouse, run=pip
    )


def test_download_is_constrained_by_the_lock_for_the_image_platform(
    source: Path, tmp_path: Path
) -> None:
    pip = FakePip(DOWNLOADS)
    house = resolve(tmp_path / "cache", pip)
    [build, download, tool] = pip.calls
    assert build[0] == "wheel" and "--no-deps" in build
    assert download[-1].startswith("shipml[serve] @ file://")
    assert {"--only-binary=:all:", "--python-version", "3.11", "--abi", "cp311"} <= set(download)
    platforms = [download[i + 1] for i, a in enumerate(download) if a == "--platform"]
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms and "manylinux1_x86_64" in platforms
    assert "--no-index" not in download
    assert sorted(pip.constraints) == sorted(
        ["mlflow==3.1.0", "numpy==2.0.1", "pip==26.3", "scikit-learn==1.5.2"]
    )  # shipml itself is the wheel being built, not a constraint
    assert tool[-1] == "pip==26.3"  # the lock's pip installs the image
    assert house.wheels == tuple(sorted(DOWNLOADS)) and house.pip == "pip-26.3-py3-none-any.whl"
    lines = house.requirements.splitlines()
    assert lines[0].startswith("numpy==2.0.1 --hash=sha256:") and len(lines) == 3
    assert house.shipml_version == "0.1.0" and not house.reused


def test_a_second_resolution_asks_no_index(source: Path, tmp_path: Path) -> None:
    first = resolve(tmp_path / "cache", FakePip(DOWNLOADS))
    pip = FakePip(DOWNLOADS)
    again = resolve(tmp_path / "cache", pip)
    assert pip.calls == [] and again.reused
    assert again.requirements == first.requirements
    (first.folder / "wheels" / DOWNLOADS[0]).write_bytes(b"tampered")
    pip = FakePip(DOWNLOADS)
    redone = resolve(tmp_path / "cache", pip)
    assert not redone.reused and len(pip.calls) == 2  # shipml's wheel is still cached


def test_a_changed_source_file_builds_a_new_shipml_wheel(source: Path, tmp_path: Path) -> None:
    pip = FakePip(DOWNLOADS)
    a = w.shipml_wheel(tmp_path / "cache", run=pip)
    assert w.shipml_wheel(tmp_path / "cache", run=pip) == a and len(pip.calls) == 1
    (source / "src" / "shipml" / "__init__.py").write_text("__version__ = '0.1.1'\n")
    b = w.shipml_wheel(tmp_path / "cache", run=pip)
    assert b != a and len(pip.calls) == 2


def test_wheelhouse_means_no_index(source: Path, tmp_path: Path) -> None:
    pip = FakePip(DOWNLOADS)
    resolve(tmp_path / "cache", pip, wheelhouse=tmp_path / "offline")
    for call in pip.calls[1:]:
        assert call[call.index("--no-index") + 1 : call.index("--no-index") + 3] == [
            "--find-links",
            str(tmp_path / "offline"),
        ]


def test_a_wheel_the_lock_does_not_pin_is_refused(source: Path, tmp_path: Path) -> None:
    pip = FakePip([*DOWNLOADS, "uvloop-0.21.0-cp311-cp311-manylinux_2_17_x86_64.whl"])
    with pytest.raises(BuildError, match=r"needs uvloop==0\.21\.0, which the training run's lock"):
        resolve(tmp_path / "cache", pip)


def test_pip_failures_show_pips_last_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BuildError) as err:
        w._pip(["download", "--no-index", "--dest", "/nonexistent", "no-such-dist==0"], "fetch")
    message = str(err.value)
    assert "could not fetch" in message and "no-such-dist" in message
    assert "build.wheelhouse" in message


def test_platform_tags() -> None:
    assert w.platform_tags("2.17", "aarch64")[:2] == [
        "manylinux_2_17_aarch64",
        "manylinux_2_16_aarch64",
    ]
    assert w.platform_tags("2.17", "aarch64")[-3:] == [
        "manylinux2014_aarch64",
        "manylinux2010_aarch64",
        "manylinux1_aarch64",
    ]
    with pytest.raises(BuildError, match=r"MAJOR\.MINOR"):
        w.platform_tags("bookworm", "x86_64")


pins = st.dictionaries(
    st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,10}[A-Za-z0-9]", fullmatch=True),
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True),
    max_size=8,
)


@given(pins)
def test_lock_pins_reads_what_installed_distributions_writes(found: dict[str, str]) -> None:
    text = "".join(f"{name}=={version}\n" for name, version in found.items())
    expected: dict[str, str] = {}
    for name, version in found.items():
        expected[w.canonical(name)] = version
    assert w.lock_pins(text + "# a comment\n-e ./local\n") == expected


def test_the_cache_keeps_only_the_recent_resolutions(source: Path, tmp_path: Path) -> None:
    houses = []
    for i in range(w.KEEP + 2):
        lock = LOCK.replace("mlflow==3.1.0", f"mlflow==3.1.{i}")
        houses.append(
            w.resolve_wheels(
                lock, tmp_path / "cache", python="3.11", glibc="2.36", arch="x86_64",
                run=FakePip(DOWNLOADS),
            )
        )  # fmt: skip
    kept = [h.folder.exists() for h in houses]
    assert kept == [False, False, True, True, True]
