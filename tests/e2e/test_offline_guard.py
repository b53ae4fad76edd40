"""The guard every e2e command runs under really catches (and blocks) network access."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GUARD = Path(__file__).with_name("_offline.py")


def test_guard_blocks_and_records_a_connection_attempt(tmp_path: Path) -> None:
    log = tmp_path / "net.log"
    code = (
        "import runpy, socket\n"
        f"runpy.run_path({str(GUARD)!r})['install']({str(log)!r})\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=0.1)\n"
        "except PermissionError as exc:\n"
        "    print('blocked:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "blocked:" in out.stdout, out.stderr
    assert "192.0.2.1" in log.read_text()


def test_guard_lets_loopback_through(tmp_path: Path) -> None:
    log = tmp_path / "net.log"
    code = (
        "import runpy, socket\n"
        f"runpy.run_path({str(GUARD)!r})['install']({str(log)!r})\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(server.getsockname(), timeout=1).close()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
    assert not log.exists()
