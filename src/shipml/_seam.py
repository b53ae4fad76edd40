"""A test seam: make this process SIGKILL itself at a named point (crash tests only).

`SHIPML_TEST_CRASH_AT=<point>` kills the process the moment it reaches `crash_point(<point>)`,
with no clean-up and no `finally` blocks run: exactly what `kill -9` at that moment does, but
at a known place, so a test of crash recovery is deterministic. Unset (always, outside the
tests), `crash_point` does nothing. The points are listed where they are called:
`register.created` and `register.committed` in `registry/client.py`.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("SHIPML_TEST_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
