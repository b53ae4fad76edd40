"""The serving environment as wheels, fetched on the host at the training run's versions.

The image installs `shipml[serve]` and nothing else, offline (`pip --no-index`) and with every
wheel's hash checked, so a build neither downloads anything nor drifts from what was trained.
Here, on the host:

- shipml itself is a wheel built from the source tree shipml runs from (an editable or
  local install), or the released wheel of the installed version;
- `pip download` resolves `shipml[serve]` for the image's platform (Python, glibc, CPU) with
  the training run's lock (`environment/requirements.lock`) as constraints, and every wheel it
  picks must be pinned by that lock;
- the pip wheel that installs them is fetched at the lock's pip version.

Resolutions are cached under `<state>/build/wheels/<key>` (the key hashes the lock, the
shipml wheel and the platform), so a repeated build calls no package index at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from shipml._hashing import sha256_file, sha256_json
from shipml.errors import BuildError

__all__ = ["Wheelhouse", "lock_pins", "platform_tags", "resolve_wheels", "shipml_wheel"]

KEEP = 3  # resolutions (and shipml wheels) kept in the cache
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip can hold
PipRun = Callable[[list[str], str], None]
"""Runs `pip ARGS` on the host (the second argument says what for, in errors)."""

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass(frozen=True)
class Wheelhouse:
    folder: Path
    wheels: tuple[str, ...]  # file names in folder/wheels: the image's environment
    pip: str  # file name in folder/tools
    requirements: str  # requirements.txt: NAME==VERSION --hash=sha256:HEX per wheel
    shipml_version: str
    reused: bool  # taken from the cache: no package index was asked


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(text: str) -> dict[str, str]:
    """`name==version` lines of a lock file as {canonical name: version}."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        name, sep, version = line.partition("==")
        if sep and name and version and not line.startswith("-"):
            pins[canonical(name.split("[")[0])] = version.split(";")[0].strip()
    return pins


def platform_tags(glibc: str, arch: str) -> list[str]:
    """Every manylinux tag a system with this glibc runs, newest first.

    pip does not expand `manylinux_2_36` to the older tags most wheels carry, so each is named.
    """
    try:
        major, minor = (int(part) for part in glibc.split("."))
    except ValueError:
        raise BuildError(f"build.base_glibc {glibc!r} is not MAJOR.MINOR (e.g. 2.36)") from None
    if major != 2 or minor < 5:
        raise BuildError(f"build.base_glibc {glibc!r}: manylinux wheels need glibc 2.5 or newer")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = [(17, "manylinux2014"), (12, "manylinux2010"), (5, "manylinux1")]
    return tags + [f"{name}_{arch}" for m, name in legacy if m <= minor]


def shipml_wheel(cache: Path, *, run: PipRun | None = None) -> Path | None:
    """A wheel of the shipml that is running, built from its source tree; None when shipml
    was installed from a package index (the image then takes the released wheel)."""
    source = _source_tree()
    if source is None:
        return None
    files = _source_files(source)
    key = sha256_json([[rel, sha256_file(source / rel)] for rel in files])
    out = cache / "shipml" / key.removeprefix("sha256:")[:32]
    found = sorted(out.glob("shipml-*.whl")) if out.is_dir() else []
    if found:
        found[0].touch()  # recently used: kept by _prune
        return found[0]
    with tempfile.TemporaryDirectory(prefix="shipml-src-") as tmp:
        copy = Path(tmp) / "src"  # a copy: building writes build/ and *.egg-info
        for rel in files:
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, copy / rel)
        (run or _pip)(
            ["wheel", "--no-deps", "--wheel-dir", f"{tmp}/out", str(copy)], "build shipml"
        )
        [wheel] = Path(tmp, "out").glob("shipml-*.whl")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, out / wheel.name))


def resolve_wheels(
    lock_text: str,
    cache: Path,
    *,
    python: str,
    glibc: str,
    arch: str,
    wheelhouse: Path | None = None,
    run: PipRun | None = None,
) -> Wheelhouse:
    """The locked wheels of `shipml[serve]` for the image, from the cache or the index."""
    run = run or _pip
    pins = lock_pins(lock_text)
    own = shipml_wheel(cache, run=run)
    root = (
        f"shipml[serve] @ {own.resolve().as_uri()}"
        if own is not None
        else f"shipml[serve]=={metadata.version('shipml')}"
    )
    pip_version = pins.get("pip") or metadata.version("pip")
    tags = platform_tags(glibc, arch)
    key = sha256_json(
        {
            "pins": pins,
            "root": root if own is None else sha256_file(own),
            "python": python,
            "platforms": tags,
            "pip": pip_version,
            "wheelhouse": str(wheelhouse) if wheelhouse else None,
        }
    )
    folder = cache / key.removeprefix("sha256:")[:32]
    manifest = folder / "wheelhouse.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if all(sha256_file(folder / rel) == h for rel, h in data["files"].items()):
            manifest.touch()  # recently used: kept by _prune
            return Wheelhouse(folder, tuple(data["wheels"]), data["pip"], data["requirements"],
                              data["shipml_version"], reused=True)  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    index = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    with tempfile.TemporaryDirectory(prefix="shipml-lock-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items() if n != "shipml"))
        platform = [arg for tag in tags for arg in ("--platform", tag)]
        major, minor = python.split(".")
        run(
            [
                "download", "--dest", str(folder / "wheels"), "--only-binary=:all:",
                "--python-version", python, "--implementation", "cp",
                "--abi", f"cp{major}{minor}", *platform,
                "--constraint", str(constraints), *index, root,
            ],
            "download the serving wheels",
        )  # fmt: skip
        run(
            ["download", "--dest", str(folder / "tools"), "--no-deps", "--only-binary=:all:",
             *index, f"pip=={pip_version}"],
            "download pip",
        )  # fmt: skip
    wheels = sorted(p.name for p in (folder / "wheels").glob("*.whl"))
    versions = {canonical(_parse(w)[0]): _parse(w)[1] for w in wheels}
    unlocked = sorted(
        f"{n}=={v}" for n, v in versions.items() if n != "shipml" and pins.get(n) != v
    )
    if unlocked:
        raise BuildError(
            f"the serving environment needs {', '.join(unlocked)}, which the training run's "
            f"lock does not pin; install shipml[serve] where you train (it is part of "
            f"shipml[pipeline]) and train again, so the image runs what was trained"
        )
    [pip_wheel] = sorted(p.name for p in (folder / "tools").glob("pip-*.whl"))
    requirements = "".join(
        f"{_parse(w)[0]}=={_parse(w)[1]} --hash={sha256_file(folder / 'wheels' / w)}\n"
        for w in wheels
    )
    files = {f"wheels/{w}": sha256_file(folder / "wheels" / w) for w in wheels}
    files[f"tools/{pip_wheel}"] = sha256_file(folder / "tools" / pip_wheel)
    shipml_version = versions.get("shipml", "")
    manifest.write_text(
        json.dumps(
            {
                "wheels": wheels,
                "pip": pip_wheel,
                "requirements": requirements,
                "shipml_version": shipml_version,
                "files": files,
            },
            indent=1,
        )
    )
    _prune(cache)
    return Wheelhouse(folder, tuple(wheels), pip_wheel, requirements, shipml_version, False)


def _prune(cache: Path) -> None:
    """Keep the most recently used resolutions and shipml wheels; each resolution holds the
    whole serving environment (~100 MB), and every change to shipml's source makes a new one."""
    resolutions = sorted(
        cache.glob("*/wheelhouse.json"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for stale in resolutions[KEEP:]:
        shutil.rmtree(stale.parent, ignore_errors=True)
    wheels = sorted(
        cache.glob("shipml/*/shipml-*.whl"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for stale in wheels[KEEP:]:
        shutil.rmtree(stale.parent, ignore_errors=True)


def _pip(args: list[str], what: str) -> None:
    """Run the host's pip; a failure shows pip's own last lines."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PIP_PROGRESS_BAR": "off"}
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        lines = [
            line
            for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and "is ignored: it is neither a file nor a directory" not in line
        ]
        tail = "\n".join(lines[-15:])
        raise BuildError(
            f"could not {what}: `pip {' '.join(args[:1])}` exited {proc.returncode}:\n{tail}\n"
            f"without network access, set build.wheelhouse to a folder holding these wheels"
        )


def _parse(wheel: str) -> tuple[str, str]:
    match = _WHEEL.match(wheel)
    if match is None:
        raise BuildError(f"{wheel} is not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)")
    return match["name"], match["version"]


def _source_tree() -> Path | None:
    """The folder shipml was installed from (editable or `pip install PATH`), if any."""
    try:
        text = metadata.distribution("shipml").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        text = None
    url = urlparse(json.loads(text).get("url", "") if text else "")
    folder = Path(unquote(url.path))
    return folder if url.scheme == "file" and (folder / "pyproject.toml").is_file() else None


def _source_files(root: Path) -> list[str]:
    """What a shipml wheel is built from: the project files and the package under src/."""
    top = [
        n for n in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg") if (root / n).is_file()
    ]
    package = [
        p.relative_to(root).as_posix()
        for p in (root / "src").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p.parent)
    ]
    return sorted(top + package)
