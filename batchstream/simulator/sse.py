"""The HTTP response an event stream goes out in: each event its own chunk, in as few writes as possible.

aiohttp frames every `write` as one chunk and sends a `StreamResponse`'s headers in a write of their own,
so a five-token reply took thirteen sends, and on loopback each send also runs the receiving side of TCP:
together a quarter of the simulator's CPU per request. Here the events are framed before they are written,
the headers wait for the first write, and a burst leaves in one write, headers and last chunk included.
The bytes on the wire are those one write per event produced, chunk boundaries and all: a client's cost
per event depends on them, and benchmarks measure that cost against this server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiohttp import HttpVersion11, web

from .wire import SSE_HEADERS

# Ends a chunked body.
LAST_CHUNK = b"0\r\n\r\n"
# The header a framed stream adds after all the others (see `EventStream`).
_CHUNKED = {"Transfer-Encoding": "chunked"}


def http_chunk(data: bytes) -> bytes:
    """`data` framed as one chunk of a chunked body, exactly as aiohttp frames the bytes of one write."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class EventStream(web.StreamResponse):
    """A streamed response whose events are written already framed as chunks, with the SSE headers ahead
    of the given `headers`.

    Two aiohttp internals make that possible (tests/test_simulator.py pins the resulting bytes):
    `_length_check` off stops aiohttp from framing the body itself (WebSocket responses use it to write
    raw frames), and `_send_headers_immediately` off holds the headers back for the first write, as
    `web.Response` does. `Transfer-Encoding` is then set here, where aiohttp would have put it in the
    header order. HTTP/1.0 has no chunked encoding: there aiohttp's own handling stays, one write per event.
    """

    def __init__(self, headers: Mapping[str, str], request: web.BaseRequest) -> None:
        self._framed = request.version >= HttpVersion11
        if self._framed:
            self._length_check = False
            self._send_headers_immediately = False
        super().__init__(headers={**SSE_HEADERS, **headers, **(_CHUNKED if self._framed else {})})

    async def send(self, events: Iterable[bytes], *, last: bool = False) -> None:
        """Write `events` in one write, each a chunk of its own; with `last`, the body ends there too."""
        if not self._framed:
            for event in events:
                await self.write(event)
            if last:
                await self.write_eof()
            return
        data = b"".join(map(http_chunk, events))
        if last:
            await self.write_eof(data + LAST_CHUNK)
        else:
            await self.write(data)
