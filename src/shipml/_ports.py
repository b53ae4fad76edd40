"""Local ports: claim one before a server starts, and name what holds it when it is taken.

A port is claimed by binding *and listening* with SO_REUSEADDR, as uvicorn would: binding
alone is no claim on Linux (two SO_REUSEADDR sockets may bind one address until one of them
listens), and a check that lets go of the port long before the server binds it leaves a
window in which another process takes it. So `shipml serve` claims its port before anything
else and serves on that very socket; a pre-flight check claims it and lets go at once (the
server started later claims it again, and the local target then proves who answers).

What holds a port is found the way `ss -p` finds it on Linux: the listening socket's inode in
/proc/net/tcp{,6}, then the process with that inode among its open files. Best effort: on
other systems, or for another user's process, the holder stays unnamed.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from shipml.errors import PortError

__all__ = ["claim", "ensure_free", "holder"]

_BACKLOG = 2048  # as the server's: connections wait in it while the model loads
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def claim(host: str, port: int, *, fix: str) -> socket.socket:
    """A socket listening on host:port, or PortError saying who holds it and `fix`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise PortError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; {fix}"
            ) from None
        raise PortError(busy(host, port, fix)) from None
    return sock


def ensure_free(host: str, port: int, *, fix: str) -> None:
    claim(host, port, fix=fix).close()


def busy(host: str, port: int, fix: str) -> str:
    who = holder(port)
    return f"port {port} on {host} is in use{f' by {who}' if who else ''}; {fix}"


def holder(port: int) -> str | None:
    """'pid 123 (python3 -m http.server 8080)' for the process listening on `port`; 'a
    process of another user' when the socket is seen but not its owner; None when unknown."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1][-4:], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:  # gone meanwhile, or another user's
            continue
        if any(_link(fd) in inodes for fd in fds):
            return f"pid {proc.name} ({_command(proc)})"
    return "a process of another user"


def _link(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # closed meanwhile
        return ""


def _command(proc: Path) -> str:
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    return text if len(text) <= 120 else text[:117] + "..."
