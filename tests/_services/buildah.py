"""buildah and a local base image for tests that build real OCI images.

No image can be pulled on these machines, so the tests make their own base: Debian bookworm
(`debootstrap --variant=minbase`) with Debian's python3 (3.11, the same minor as the test
venv, so host-downloaded cp311 wheels install in it), imported into the local containers
storage as `localhost/shipml-test-base:<key>`. The key hashes everything that goes into it,
so the ~1 minute of debootstrap runs once per machine and later runs find the image.

``require_buildah()`` skips a test when buildah (or root, which debootstrap and chroot
isolation need) is missing -- unless ``SHIPML_REQUIRE_SERVICES=1`` (set by CI), then it fails.
``base_image()`` returns the base pinned by digest (NAME:TAG@sha256:HEX), building it first
when the storage does not hold it. The Debian mirror is ``$SHIPML_DEBIAN_MIRROR``, else the
first mirror of the suite in this machine's own apt sources (``/etc/apt/sources.list`` and
``sources.list.d``, one-line or deb822 format), so no host is written into the project.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REQUIRE_ENV = "SHIPML_REQUIRE_SERVICES"
MIRROR_ENV = "SHIPML_DEBIAN_MIRROR"
INSTALL_HINT = "install them with `apt-get install -y buildah debootstrap` (as root)"
BASE_NAME = "localhost/shipml-test-base"
RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "include": ["python3"],
    "drop": [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ],
    "cmd": ["/bin/sh"],
    "revision": 1,  # bump to rebuild the base after changing how it is made
}


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def require_buildah() -> None:
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    reason = ""
    if missing:
        reason = f"{' and '.join(missing)} not installed; {INSTALL_HINT}"
    elif os.geteuid() != 0:
        reason = "building images with buildah --isolation chroot and debootstrap needs root"
    if reason:
        if _required():
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is an error, not a skip)", False)
        pytest.skip(reason)


def _run(*argv: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc.stdout


def _digest(ref: str) -> str | None:
    proc = subprocess.run(
        ["buildah", "inspect", "--type", "image", ref], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None
    return str(json.loads(proc.stdout)["FromImageDigest"])


def debian_mirror(suite: str, apt_dir: Path = Path("/etc/apt")) -> str:
    """Where debootstrap fetches `suite` from: $SHIPML_DEBIAN_MIRROR or the apt sources."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for file in files:
        if not file.is_file() or file.suffix not in ("", ".list", ".sources"):
            continue
        text = file.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):  # deb822: Types/URIs/Suites stanzas
            fields = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.splitlines())
                if not k.startswith("#") and v
            )
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
            ):
                return fields["uris"].split()[0]
        for line in text.splitlines():  # one-line: deb [options] URI suite components
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise RuntimeError(
        f"no Debian mirror for {suite!r} in {apt_dir}/sources.list*; set {MIRROR_ENV} to "
        f"the URL of a Debian mirror"
    )


def base_image() -> str:
    """The test base image, pinned by digest; built when the local storage lacks it."""
    require_buildah()
    key = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]
    ref = f"{BASE_NAME}:{key}"
    digest = _digest(ref)
    if digest is None:
        mirror = debian_mirror(str(RECIPE["suite"]))
        with tempfile.TemporaryDirectory(prefix="shipml-base-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            _run(
                "debootstrap",
                f"--variant={RECIPE['variant']}",
                f"--include={','.join(RECIPE['include'])}",
                str(RECIPE["suite"]),
                str(rootfs),
                mirror,
            )
            for rel in RECIPE["drop"]:
                shutil.rmtree(rootfs / rel, ignore_errors=True)
            tar = Path(tmp) / "rootfs.tar"
            _run("tar", "-C", str(rootfs), "--numeric-owner", "--sort=name", "-cf", str(tar), ".")
            container = _run("buildah", "from", "scratch").strip()
            try:
                _run("buildah", "add", container, str(tar), "/")
                _run("buildah", "config", "--cmd", json.dumps(RECIPE["cmd"]), container)
                _run("buildah", "commit", "--quiet", container, ref)
            finally:
                subprocess.run(["buildah", "rm", container], capture_output=True)
        digest = _digest(ref)
        assert digest, f"{ref} was committed but cannot be inspected"
    return f"{ref}@{digest}"


def remove_images(*refs: str) -> None:
    """Remove images a test built (never the base); missing ones are ignored."""
    for ref in refs:
        subprocess.run(["buildah", "rmi", "--force", ref], capture_output=True)
