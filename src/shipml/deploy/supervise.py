"""The local target's supervisor: keeps one `shipml serve` process running.

`python -m shipml.deploy.supervise DIR` starts the server described by `DIR/desired.json` and
waits on it. A server that dies (killed, out of memory) is started again with the stable
model the file names *now*, so a crash after a promotion brings back the promoted version,
not the one first started. Loaded canary or shadow variants are not restored: their metrics
restart, which the rollout analysis reads as a reset (inconclusive), never as a pass.

SIGTERM is passed on to the server (in-flight requests finish, logs flush) and ends the
supervisor. A server that exits within `_STARTUP_S` of starting is not restarted: it cannot
start (a bad model, a taken port), and restarting would only hide that; the supervisor exits
with its code. At most `_MAX_RESTARTS` restarts within `_WINDOW_S`, then it gives up.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_STARTUP_S = 5.0
_MAX_RESTARTS = 5
_WINDOW_S = 60.0


def command(desired: dict[str, Any]) -> list[str]:
    stable = desired["stable"]
    model = stable.get("model") or f"models:/{stable['name']}/{stable['version']}"
    return [sys.executable, "-m", "shipml", "serve", model, *desired["args"]]


def supervise(directory: Path) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts: list[float] = []
    while not stopping:
        desired = json.loads((directory / "desired.json").read_text())
        started = time.monotonic()
        child = subprocess.Popen(command(desired), stdin=subprocess.DEVNULL)
        code = child.wait()
        if stopping:
            return 0
        now = time.monotonic()
        if now - started < _STARTUP_S:
            _say(f"the server exited with code {code} while starting; not restarting it")
            return code or 1
        restarts = [t for t in restarts if now - t < _WINDOW_S] + [now]
        if len(restarts) > _MAX_RESTARTS:
            _say(f"the server died {len(restarts)} times within {_WINDOW_S:g} s; giving up")
            return code or 1
        _say(f"the server exited with code {code}; restarting it ({len(restarts)})")
        time.sleep(0.5)
    return 0


def _say(message: str) -> None:
    print(f"shipml supervisor: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))
