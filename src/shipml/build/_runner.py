"""What every builder shares: the image record, the container handle, running commands."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shipml.errors import BuildError

LOG_TAIL = 40


@dataclass(frozen=True)
class ImageInfo:
    id: str  # sha256:HEX of the image configuration
    digest: str | None  # sha256:HEX of the manifest, when the builder knows one locally
    size: int  # bytes of the unpacked layers
    labels: dict[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


class Container(Protocol):
    """A started image, answering on 127.0.0.1:port."""

    url: str

    def running(self) -> bool: ...

    def logs(self) -> str: ...

    def stop(self) -> None: ...


class Runner(Protocol):
    """How builders run commands; tests substitute one that records them."""

    def run(self, argv: Sequence[str], *, log: Path | None = None, timeout: float = 0) -> str:
        """Run to completion; stdout (stdout and stderr go to `log` instead when given).
        A non-zero exit raises BuildError with the command's last lines."""

    def spawn(self, argv: Sequence[str], *, log: Path) -> subprocess.Popen[bytes]:
        """Start without waiting, in its own process group, output to `log`."""


class SubprocessRunner:
    def run(self, argv: Sequence[str], *, log: Path | None = None, timeout: float = 0) -> str:
        returncode: int
        try:
            if log is not None:
                with open(log, "ab") as out:
                    returncode = subprocess.run(
                        list(argv),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        timeout=timeout or None,
                    ).returncode
                stdout, output = "", tail(log.read_text(errors="replace"))
            else:
                done = subprocess.run(
                    list(argv),
                    capture_output=True,
                    text=True,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout or None,
                )
                returncode, stdout = done.returncode, done.stdout
                output = tail(done.stdout + done.stderr)
        except FileNotFoundError:
            raise BuildError(f"{argv[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise BuildError(f"`{cmd(argv)}` did not finish within {timeout:.0f} s") from None
        if returncode != 0:
            where = f" (full log: {log})" if log else ""
            raise BuildError(
                f"`{cmd(argv)}` exited with {returncode}{where}; its last lines:\n{output}"
            )
        return stdout

    def spawn(self, argv: Sequence[str], *, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )


def problem_of(name: str, exc: BuildError) -> str:
    last = str(exc).splitlines()[-1].strip()
    return (
        f"{name}: {'not installed' if last.endswith('is not installed') else last or 'not usable'}"
    )


def flags(flag: str, values: Mapping[str, str]) -> list[str]:
    """[flag, KEY=VALUE, ...] in key order."""
    return [arg for k in sorted(values) for arg in (flag, f"{k}={values[k]}")]


def signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def tail(text: str, lines: int = LOG_TAIL) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def cmd(argv: Sequence[str]) -> str:
    shown = " ".join(argv[:3])
    return shown + (" …" if len(argv) > 3 else "")
