"""HTTP plumbing shared by the server's routes: ASGI types, body reading, JSON answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from shipml.serve.inputs import InputError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before its request was read: no one to answer, and no fault
    of the request's, so it is counted apart from invalid input and errors."""


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The request body, refusing one over `limit` bytes before (or while) reading it."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InputError(
            413, "body_too_large", f"the body has {int(declared)} bytes; the limit is {limit}", None
        )
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InputError(
                413, "body_too_large", f"the body exceeds the limit of {limit} bytes", None
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    base = JSON if headers is None or not any(k == b"content-type" for k, _ in headers) else []
    # With a content-length the server sends the body as is, not in chunked encoding.
    length = [(b"content-length", b"%d" % len(body))]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*base, *length, *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def error(send: Send, status: int, code: str, message: str, *, retry: bool = False) -> None:
    headers = [(b"retry-after", b"1")] if retry else []
    body = orjson.dumps({"error": {"code": code, "message": message, "field": None}})
    await respond(send, status, body, [*JSON, *headers])
