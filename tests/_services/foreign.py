"""Another process's server on a port shipml wants: a real listening HTTP server on loopback.

It answers 200 with `{"ready": true, ...}` to every GET, `/readyz` and `/admin/identity`
included, with a made-up proof, as a careless or hostile neighbour could. It runs in a thread
of the test process, so the process that holds the port is the test's own (`os.getpid()`).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        challenge = self.headers.get("x-shipml-challenge", "")
        body = json.dumps({"ready": True, "proof": challenge or "0" * 64}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


class ForeignServer(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def foreign_server(port: int = 0) -> Iterator[int]:
    """Serve on 127.0.0.1:`port` (0: a free one) until the block ends; yields the port."""
    server = ForeignServer(("127.0.0.1", port), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
