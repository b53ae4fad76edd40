"""`shipml serve` against slow clients: connections that trickle their headers or body are cut
by the server's read deadlines (serve.header_timeout_s, serve.body_timeout_s)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.integration.serve.conftest import records, start_server

pytestmark = pytest.mark.slow

HEAD = b"POST /invocations HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"


async def trickle(port: int, first: bytes, step: bytes, give_up_s: float) -> bytes | None:
    """Send `first`, then `step` every 0.1 s; what the server sent before it closed the
    connection, or None if it had not closed it after `give_up_s` (the test's bound)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""

    async def read_until_closed() -> None:
        nonlocal received
        while chunk := await reader.read(65536):
            received += chunk

    closed = asyncio.ensure_future(read_until_closed())
    try:
        writer.write(first)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_s
        while not closed.done() and loop.time() < deadline:
            try:
                writer.write(step)
                await writer.drain()
            except ConnectionError:  # closed by the server: a reset of our write counts too
                break
            await asyncio.wait([closed], timeout=0.1)
        with contextlib.suppress(TimeoutError, ConnectionError):  # the server's close, if due
            await asyncio.wait_for(asyncio.shield(closed), timeout=5)
        return received if closed.done() else None
    finally:
        closed.cancel()
        writer.close()


def test_trickling_headers_and_bodies_are_cut(
    model_dir: Path, credit_project: Path, rows: pd.DataFrame
) -> None:
    """20 connections trickle a header line, 20 a body (of a declared 100 kB), 5 a body too
    large to read (answered 413 at once, then still trickled), 10 send nothing. With deadlines
    of 1 s, the server closes every one of them well within the test's bound of 20 s (before
    the fix it read them for as long as they trickled), answers 408 where a request had begun
    and had no answer yet, and keeps answering a normal client meanwhile."""
    server = start_server(
        model_dir,
        credit_project,
        env={"SHIPML_SERVE__HEADER_TIMEOUT_S": "1", "SHIPML_SERVE__BODY_TIMEOUT_S": "1"},
    )
    port = int(server.url.rsplit(":", 1)[1])
    body_head = HEAD + b"content-length: 100000\r\n\r\n{"
    huge_head = HEAD + b"content-length: 900000000\r\n\r\n{"
    Results = list[bytes | None]

    async def main() -> tuple[Results, Results, Results, Results, int]:
        headers = [trickle(port, HEAD + b"x-slow: ", b"a", 20) for _ in range(20)]
        bodies = [trickle(port, body_head, b" ", 20) for _ in range(20)]
        huge = [trickle(port, huge_head, b" ", 20) for _ in range(5)]
        silent = [trickle(port, b"", b"", 20) for _ in range(10)]
        tasks = [asyncio.ensure_future(c) for c in (*headers, *bodies, *huge, *silent)]
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            normal = await client.post(
                "/invocations", json={"dataframe_records": records(rows.head(3))}
            )
        done = await asyncio.gather(*tasks)
        return done[:20], done[20:40], done[40:45], done[45:], normal.status_code

    try:
        headers, bodies, huge, silent, normal = asyncio.run(main())
    finally:
        server.stop()
    assert normal == 200
    not_cut = sum(r is None for r in (*headers, *bodies, *huge, *silent))
    assert not_cut == 0, f"{not_cut} of 55 slow connections were still open after 20 s"
    assert all(r is not None and r.startswith(b"HTTP/1.1 408 ") for r in headers), headers
    assert all(r is not None and b'"body_timeout"' in r for r in bodies), bodies
    assert all(r is not None and r.startswith(b"HTTP/1.1 413 ") and b" 408 " not in r for r in huge)
    assert all(r == b"" for r in silent), silent  # nothing sent, so no answer: just closed
