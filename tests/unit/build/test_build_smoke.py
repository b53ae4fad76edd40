"""Infra validation against stand-in containers: ready and equal passes, anything else is a
failed gate that shows the container's log. (The real image: tests/integration/build.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipml.build.smoke import TOLERANCE, smoke_test
from shipml.errors import GateFailed

BODY = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1], [2]]}}).encode()


class FakeServer:
    """A container stand-in: an HTTP server in a thread, writing a log like a server would."""

    def __init__(self, port: int, log: Path, *, ready_after: float, answer: Any) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.start = time.monotonic()
        self.stopped = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ready = time.monotonic() - outer.start >= ready_after
                self.send_response(200 if ready else 503)
                self.end_headers()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                with open(outer.log, "a") as f:
                    f.write("request " + (args[1] if len(args) > 1 else "") + "\n")

        log.write_text("".join(f"startup line {i}\n" for i in range(50)))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def running(self) -> bool:
        return not self.stopped

    def logs(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()


class Crashed:
    def __init__(self, log: Path) -> None:
        self.url = "http://127.0.0.1:9"
        log.write_text(
            "Traceback (most recent call last):\nModuleNotFoundError: No module named 'sklearn'\n"
        )
        self.log = log

    def running(self) -> bool:
        return False

    def logs(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        pass


class FakeBuilder:
    name = "fake"

    def __init__(self, make: Any) -> None:
        self.make = make
        self.started: list[Any] = []

    def start(self, image: str, *, port: int, env: Mapping[str, str], log: Path) -> Any:
        assert env == {"SHIPML_SERVE__PORT": str(port)}  # how every image learns its port
        container = self.make(port, log)
        self.started.append(container)
        return container


def run(builder: FakeBuilder, tmp_path: Path, expected: list[float], timeout: float = 10) -> Any:
    return smoke_test(
        builder,
        "img",
        body=BODY,
        expected=expected,
        timeout=timeout,
        log=tmp_path / "container.log",
    )


def test_a_ready_server_with_equal_predictions_passes(tmp_path: Path) -> None:
    builder = FakeBuilder(
        lambda port, log: FakeServer(port, log, ready_after=0.5, answer={"predictions": [0.1, 0.2]})
    )
    result = run(builder, tmp_path, [0.1, 0.2 + TOLERANCE / 2])
    assert result.rows == 2 and result.max_abs_diff <= TOLERANCE and result.ready_s >= 0.5
    assert builder.started[0].stopped  # stopped after the check


def test_different_predictions_fail_the_gate(tmp_path: Path) -> None:
    builder = FakeBuilder(
        lambda port, log: FakeServer(port, log, ready_after=0, answer={"predictions": [0.1, 0.3]})
    )
    with pytest.raises(GateFailed) as err:
        run(builder, tmp_path, [0.1, 0.2])
    assert err.value.stage == "infra validation"
    assert "row 1" in err.value.reasons[0] and "0.3" in err.value.reasons[0]
    assert builder.started[0].stopped


def test_a_malformed_answer_fails_the_gate(tmp_path: Path) -> None:
    builder = FakeBuilder(lambda port, log: FakeServer(port, log, ready_after=0, answer={"x": 1}))
    with pytest.raises(GateFailed, match="expected"):
        run(builder, tmp_path, [0.1, 0.2])


def test_a_server_that_never_becomes_ready_fails_with_the_log_tail(tmp_path: Path) -> None:
    builder = FakeBuilder(
        lambda port, log: FakeServer(port, log, ready_after=3600, answer={"predictions": []})
    )
    with pytest.raises(GateFailed) as err:
        run(builder, tmp_path, [0.1], timeout=1.5)
    reason, log = err.value.reasons
    assert "never became ready" in reason and "within 1.5 s" in reason and "503" in reason
    assert "container log (last 30 lines)" in log and "startup line 49" in log
    assert "startup line 10\n" not in log  # only the tail
    assert builder.started[0].stopped


def test_a_container_that_exits_fails_at_once_with_its_log(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(GateFailed) as err:
        run(FakeBuilder(lambda port, log: Crashed(log)), tmp_path, [0.1], timeout=60)
    assert time.monotonic() - t0 < 10
    assert "exited before /readyz answered" in err.value.reasons[0]
    assert "No module named 'sklearn'" in err.value.reasons[1]
