"""Infra validation: the built image must start, become ready and predict like the model.

The image is started with its own entrypoint through the builder that built it, `/readyz`
is polled until it answers 200, then the model's input example is sent to `/invocations` and
the answer is compared with the prediction of the same model folder loaded in this process
(the server's own loader and input parsing, so only the image's environment differs). Any
failure is a GateFailed whose reasons end with the tail of the container's log.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from shipml.build.builders import Builder, Container
from shipml.errors import GateFailed

__all__ = ["TOLERANCE", "SmokeResult", "expected_predictions", "free_port", "smoke_test"]

TOLERANCE = 1e-9
"""Largest |difference| allowed between the image's and the in-process probabilities: the
same libraries at the same versions compute the same numbers; this leaves room only for
floating-point summation order."""
LOG_LINES = 30
STAGE = "infra validation"


@dataclass(frozen=True)
class SmokeResult:
    ready_s: float
    rows: int
    max_abs_diff: float
    predictions: list[float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def expected_predictions(model: Any, body: bytes, serve_config: Any) -> list[float]:
    """What the server's code computes for `body` in this process."""
    from shipml.serve.inputs import Policy, parse_invocations

    batch = parse_invocations(body, model.schema, Policy.from_config(serve_config))
    return [float(p) for p in model.predict(batch)]


def smoke_test(
    builder: Builder,
    image: str,
    *,
    body: bytes,
    expected: list[float],
    timeout: float,
    log: Path,
) -> SmokeResult:
    """Start `image`, wait for /readyz, POST `body` to /invocations, compare with `expected`."""
    port = free_port()
    log.unlink(missing_ok=True)
    t0 = time.monotonic()
    container = builder.start(image, port=port, env={"SHIPML_SERVE__PORT": str(port)}, log=log)
    try:
        _wait_ready(container, timeout)
        ready_s = time.monotonic() - t0
        try:
            answer = _post(f"{container.url}/invocations", body)
        except (OSError, ValueError) as exc:
            _fail(container, f"POST /invocations with the model's input example failed: {exc}")
        got = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(got, list) or len(got) != len(expected):
            _fail(
                container,
                f"/invocations answered {json.dumps(answer)[:300]}; expected "
                f"{{'predictions': [...]}} with {len(expected)} probabilities",
            )
        diffs = [abs(float(a) - b) for a, b in zip(got, expected, strict=True)]
        worst = max(diffs, default=0.0)
        if worst > TOLERANCE:
            row = diffs.index(worst)
            _fail(
                container,
                f"the image predicts {got[row]!r} for row {row} of the input example, the "
                f"model in process {expected[row]!r} (|difference| {worst:.3g} > {TOLERANCE}); "
                f"the image's libraries differ from the training run's",
            )
        return SmokeResult(ready_s, len(expected), worst, [float(p) for p in got])
    finally:
        container.stop()


def _wait_ready(container: Container, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not container.running():
            time.sleep(0.5)  # let the last lines reach the log
            _fail(container, f"the container exited before /readyz answered ({last})")
        try:
            with urllib.request.urlopen(f"{container.url}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"/readyz answered {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"/readyz answered {exc.code}"
        except (OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    _fail(
        container,
        f"the server never became ready: /readyz did not answer 200 within {timeout:g} s "
        f"(last: {last}); raise build.smoke_timeout_s if it is only slow",
    )


def _post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ValueError(f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}") from None


def _fail(container: Container, reason: str) -> NoReturn:
    lines = container.logs().rstrip().splitlines()[-LOG_LINES:]
    tail = "\n".join(f"    {line}" for line in lines) or "    (the container wrote nothing)"
    raise GateFailed(STAGE, [reason, f"container log (last {len(lines)} lines):\n{tail}"])
