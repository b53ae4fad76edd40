"""uvicorn, bounded: read deadlines per connection, and a shutdown that drops nothing sent.

uvicorn's httptools protocol has a keep-alive timeout but no read timeout: a client that
trickles its headers or its body one byte at a time holds a connection (and, for a body, a
request task) for as long as it likes. `Protocol` adds one deadline per phase of a request:
its header block must arrive within `header_timeout_s` (from connect, or from the first byte
of a later request on a kept-alive connection), its body within `body_timeout_s` (from the
end of its headers). Past it the connection gets 408 (when a request had begun) and is
closed; a request task waiting for the body sees a disconnect. Beyond the one armed at
connect, no timer is made for a request that arrives in one read (nearly every request).

uvicorn's own shutdown resets two kinds of connection whose requests were fully sent:
- connections in the listening socket's accept backlog, because closing the listener makes
  the kernel reset them; `Server` first accepts everything queued there (holding a duplicate
  of the listening socket so the backlog survives uvicorn's close), then closes it;
- accepted connections whose request is still unread in the kernel's buffer (or half
  parsed): uvicorn closes every connection without a request in progress, and closing a
  socket with unread bytes sends a reset. `Protocol.shutdown` keeps such a connection open,
  answers its request with `connection: close`, and lets its read deadline bound it.
Only connections that are truly idle (nothing unread, no request begun) are closed at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import termios
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEADERS, _BODY = "headers", "body"


class Protocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout_s: float,
        body_timeout_s: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = {_HEADERS: header_timeout_s, _BODY: body_timeout_s}
        self._phase: str | None = _HEADERS  # what the connection is waiting for
        self._began = False  # a request's first byte was parsed, its last not yet
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase: str | None = None
        self._draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._phase != self._timer_phase:  # a phase began or ended during this read
            self._disarm()
            if self._phase is not None and not self.transport.is_closing():
                self._arm()

    # parser callbacks: where each phase begins and ends
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._began = _HEADERS, True

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answered, then closed: the server is stopping

    def on_message_complete(self) -> None:
        self._phase, self._began = None, False
        super().on_message_complete()

    def shutdown(self) -> None:
        """Called by the server when it stops: close only connections with nothing to answer."""
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            if self._began or _unread_bytes(self.transport):
                return  # a request is arriving or waiting: read it, answer it, then close
            self.transport.close()
        else:
            self.cycle.keep_alive = False

    def _arm(self) -> None:
        phase = self._phase
        assert phase is not None
        self._timer_phase = phase
        self._timer = self.loop.call_later(self._limits[phase], self._expired, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_phase = None, None

    def _expired(self, phase: str) -> None:
        self._timer, self._timer_phase = None, None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if phase == _HEADERS:
            answer = self._began  # a client that sent nothing gets no answer
        else:  # no 408 after an answer the app already gave (e.g. a 413 before the body)
            answer = cycle is not None and not cycle.response_started
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the request task sees a disconnect, sends nothing
                cycle.message_event.set()
        if answer:
            self.transport.write(_timeout_response(phase, self._limits[phase]))
        self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server, but a shutdown first takes in every connection already queued."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._accept_backlog()
        await super().shutdown(sockets)

    async def _accept_backlog(self) -> None:
        loop = asyncio.get_running_loop()
        held = [
            socket.socket(fileno=os.dup(s.fileno()))
            for server in self.servers
            for s in server.sockets or ()
        ]
        for server in self.servers:
            server.close()  # the loop stops accepting; `held` keeps the backlog alive

        def protocol() -> asyncio.Protocol:
            make = self.config.http_protocol_class
            return make(  # type: ignore[call-arg]
                config=self.config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=loop,
            )

        for listener in held:
            with listener:
                listener.setblocking(False)
                while True:
                    try:
                        conn, _ = listener.accept()
                    except OSError:  # BlockingIOError: the backlog is empty
                        break
                    await loop.connect_accepted_socket(protocol, conn)


def _unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes received by the kernel on this connection that nobody has read yet."""
    sock = transport.get_extra_info("socket")
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


def _timeout_response(phase: str, limit: float) -> bytes:
    body = (
        b'{"error":{"code":"%s_timeout","message":"the request %s did not arrive within '
        b'%g s","field":null}}' % (phase.encode(), phase.encode(), limit)
    )
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )
