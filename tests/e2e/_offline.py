"""Run `shipml` with an audit hook that blocks and records any attempt to reach the network.

The end-to-end tests start the CLI through this file, so each of their commands also proves
the claim that shipml (and the libraries it drives) does not touch the network. The hook
runs before the socket call and raises, so a blocked attempt never leaves the machine, and
it is logged even when a library swallows the error.
"""

from __future__ import annotations

import ipaddress
import os
import runpy
import sys
from typing import Any


def _local(host: Any) -> bool:
    if host in (None, "", "localhost") or not isinstance(host, str | bytes):
        return True
    host = host.decode() if isinstance(host, bytes) else host
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name other than localhost would need DNS


def install(log_path: str) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            address = args[1]
        elif event == "socket.getaddrinfo":
            address = (args[0], args[1])
        else:
            return
        if isinstance(address, tuple) and not _local(address[0]):
            with open(log_path, "a") as log:
                log.write(f"{event} {address!r}\n")
            raise PermissionError(f"network access to {address!r} blocked by the e2e tests")

    sys.addaudithook(hook)


if __name__ == "__main__":
    install(os.environ["SHIPML_NETWORK_LOG"])
    sys.argv = ["shipml", *sys.argv[1:]]
    runpy.run_module("shipml", run_name="__main__", alter_sys=True)
