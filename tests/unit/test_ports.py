"""Claiming a local port, and naming the process that holds one (real sockets on 127.0.0.1)."""

from __future__ import annotations

import os
import socket

import pytest

from shipml._ports import claim, holder
from shipml.errors import PortError


def _listening() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_a_held_port_is_refused_with_its_holder_and_the_fix() -> None:
    with _listening() as held:
        port = held.getsockname()[1]
        with pytest.raises(PortError, match=f"port {port} on 127.0.0.1 is in use by pid") as e:
            claim("127.0.0.1", port, fix="set serve.port")
    assert f"pid {os.getpid()} (" in str(e.value)
    assert str(e.value).endswith("; set serve.port")
    assert e.value.exit_code == 2


def test_a_claim_is_exclusive_where_a_reusable_bind_is_not() -> None:
    """Two SO_REUSEADDR sockets may both bind a port until one listens: a bind-only check
    would call a port free that a starting server has bound. A claim listens at once."""
    with claim("127.0.0.1", 0, fix="") as first:
        port = first.getsockname()[1]
        with pytest.raises(PortError):
            claim("127.0.0.1", port, fix="")
        assert f"pid {os.getpid()} (" in (holder(port) or "")


def test_nobody_holds_a_port_nobody_listens_on() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: nobody answers there
        assert holder(s.getsockname()[1]) is None
