"""A small HTTP/1.1 server on `asyncio.Protocol` and `httptools`, just what the simulator needs.

aiohttp's server machinery cost the simulator 155-190 µs of CPU per request, most of its budget, while
parsing with httptools and writing straight to the transport costs a fraction of that: a benchmark's
thousand concurrent streams share two cores with the client being measured. The bytes on the wire are
those aiohttp sent, header order and chunk framing included, minus its `Server:` header, which the real
API does not send.

What it does: keep-alive by HTTP/1.0 and 1.1 rules, pipelined requests answered in order, request bodies
by content-length or chunked (httptools decodes either), `Expect: 100-continue`, HEAD, a cap on body size,
and a handler cancelled when its client disconnects. What it does not: upgrades, trailers, compression.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from ssl import SSLContext
from typing import Any, cast
from urllib.parse import unquote

import httptools

logger = logging.getLogger(__name__)

# Ends a chunked body.
LAST_CHUNK = b"0\r\n\r\n"
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_CLOSE = b"Connection: close\r\n"
_INTERNAL_ERROR = b"500 Internal Server Error\n\nServer got itself in trouble"


class _BadRequest(Exception):
    """Ends parsing with a 400 where httptools would let a request through that aiohttp refused."""


class BodyTooLarge(Exception):
    """The request body went over the server's `max_body` and was discarded."""


_date_second = -1
_date_line = b""


def date_line() -> bytes:
    """The `Date` header line, formatted once a second rather than once a response."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second, _date_line = now, header_lines({"Date": email.utils.formatdate(now, usegmt=True)})
    return _date_line


def header_lines(headers: Mapping[str, str]) -> bytes:
    """Header fields as they go on the wire, each line ending in CRLF.

    Responses take their headers in this form so that a caller can encode the fields it sends with every
    response once (the rate-limit headers change once a second) rather than format them per response.
    """
    return "".join([f"{name}: {value}\r\n" for name, value in headers.items()]).encode("latin-1")


class Headers:
    """A request's header fields, looked up by lower-case name; where a name repeats, the first value wins,
    as `CIMultiDict.get` has it.

    Values are decoded only when looked up: a client sends about twenty fields, the simulator reads five,
    and decoding them all cost more than parsing the request.
    """

    __slots__ = ("_fields",)

    def __init__(self) -> None:
        self._fields: dict[bytes, bytes] = {}

    def add(self, fields: Mapping[bytes, bytes]) -> None:
        """Take `fields` as parsed (names as sent, the first value of each), after those already held."""
        held = self._fields
        if not held and b"".join(fields).islower():  # as clients send them: no names to fold together
            held.update(fields)
            return
        for name, value in fields.items():
            held.setdefault(name.lower(), value)

    def get(self, name: str) -> str | None:
        """The value of the lower-case `name`, if the request has it."""
        value = self._fields.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def __contains__(self, name: str) -> bool:
        return name.encode("latin-1") in self._fields


class Request:
    """One parsed request, its body already read in full (the simulator needs every body whole)."""

    __slots__ = (
        "_body",
        "_connection",
        "_streamed",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "version",
    )

    def __init__(
        self,
        connection: HttpConnection,
        method: str,
        path: str,
        version: str,
        headers: Headers,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.query = ""  # the raw query string, after the "?"
        self.version = version
        self.headers = headers
        # Whether the connection stays open after this exchange; a response can only turn it off.
        self.keep_alive = keep_alive
        self._body: list[bytes] | None = []
        self._connection = connection
        # Set once a `StreamResponse` has been started for it: from then on, only the stream can answer.
        self._streamed = False

    def read(self) -> bytes:
        """The body; raises `BodyTooLarge` if it went over the server's limit."""
        if self._body is None:
            raise BodyTooLarge
        return b"".join(self._body)

    def abort(self) -> None:
        """Cut the TCP connection, so the client sees a broken read rather than a well-formed end of body."""
        self._connection.transport.abort()


class Response:
    """A response with the whole body in hand: headers and body leave in one write."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, body: bytes, content_type: str, *, status: int = 200, headers: bytes = b"") -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers  # as `header_lines` encodes them

    def encode(self, request: Request) -> bytes:
        fields = header_lines({"Content-Type": self.content_type, "Content-Length": str(len(self.body))})
        head = _head(request, self.status, self.headers + fields)
        return head if request.method == "HEAD" else head + self.body


class StreamResponse:
    """A response written as it is produced: chunked on HTTP/1.1; on HTTP/1.0, raw and ended by closing.

    The headers wait for the first write, so a reply produced at once leaves in one write. Each piece given
    to `write` becomes a chunk of its own: a client's cost per event depends on the framing, and benchmarks
    measure that cost against this server.
    """

    __slots__ = ("_chunked", "_head", "_request")

    def __init__(self, request: Request, headers: bytes) -> None:
        """`headers` as `header_lines` encodes them."""
        self._request = request
        request._streamed = True
        self._chunked = request.version == "1.1"
        if self._chunked:
            headers += _CHUNKED
        else:
            request.keep_alive = False  # nothing else marks the end of the body
        self._head: bytes | None = _head(request, 200, headers)

    async def write(self, pieces: Iterable[bytes], *, last: bool = False) -> None:
        """Write `pieces` in one write, each its own chunk; with `last`, the body ends there too."""
        if self._chunked:
            data = b"".join([b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces])
            if last:
                data += LAST_CHUNK
        else:
            data = b"".join(pieces)
        if self._head is not None:
            data, self._head = self._head + data, None
        await self._request._connection.write(data)


def _head(request: Request, status: int, fields: bytes) -> bytes:
    """Status line and header `fields`, then `Date` and `Connection` where aiohttp put them."""
    version = request.version
    if request.keep_alive:
        connection = _KEEP_ALIVE if version == "1.0" else b""
    else:
        connection = _CLOSE if version == "1.1" else b""
    return _status_line(version, status) + fields + date_line() + connection + b"\r\n"


@functools.cache
def _status_line(version: str, status: int) -> bytes:
    return f"HTTP/{version} {status} {_REASONS.get(status, '')}\r\n".encode("latin-1")


Handler = Callable[[Request], Awaitable[Response | None]]


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests and runs the handler on each in turn, in a task of its own.

    A handler returns a `Response`, or None once it has answered on the wire itself (a stream) or hung up.
    If the client goes away, the running handler is cancelled.
    """

    transport: asyncio.Transport

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        # The fields of the request being parsed, the first value of each name as sent. httptools calls
        # `on_header` once per field and a client sends about twenty: a dict's own `setdefault` takes them
        # with no Python frame, and `Headers` decodes only those looked up. It must be in place before the
        # parser is made, which looks `on_header` up once.
        self._fields: dict[bytes, bytes] = {}
        self.on_header = self._fields.setdefault
        self._parser = httptools.HttpRequestParser(self)
        self._pending: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._closed = False
        # The request being parsed.
        self._url = b""
        self._request: Request | None = None
        self._body_size = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not `asyncio.Transport` subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrades here: the request is answered as a plain one
        except httptools.HttpParserError as exc:
            # A callback's own exception comes wrapped, with the original as its context.
            reason = exc.__context__ if isinstance(exc.__context__, _BadRequest) else exc
            self._bad_request(str(reason))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_headers_complete(self) -> None:
        parser = self._parser
        headers = Headers()
        self._take_fields(headers)
        version = parser.get_http_version()
        if version == "1.1" and "host" not in headers:
            raise _BadRequest("Missing 'Host' header in request.")
        raw_path, _, query = self._url.partition(b"?")
        path = raw_path.decode("latin-1")
        self._url = b""
        self._body_size = 0
        if "%" in path:
            path = unquote(path)
        self._request = Request(
            self,
            parser.get_method().decode("ascii"),
            path,
            version,
            headers,
            parser.should_keep_alive(),
        )
        if query:
            self._request.query = query.decode("latin-1")
        if version == "1.1" and (headers.get("expect") or "").lower() == "100-continue":
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        request = self._request
        assert request is not None
        if request._body is None:
            return
        self._body_size += len(body)
        if self._body_size > self._server.max_body:
            request._body = None  # discard the rest as it arrives
        else:
            request._body.append(body)

    def on_message_complete(self) -> None:
        request, self._request = self._request, None
        assert request is not None
        if self._fields:  # a chunked body's trailer fields: they join the headers
            self._take_fields(request.headers)
        if not request.keep_alive:
            self._closed = True  # nothing after this request is read
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve(request))
        else:
            self._pending.append(request)

    def _take_fields(self, headers: Headers) -> None:
        headers.add(self._fields)
        self._fields.clear()

    # Serving

    async def _serve(self, request: Request) -> None:
        """Answer `request`, then any pipelined behind it, in order; close when keep-alive ends."""
        while True:
            try:
                response = await self._server.handler(request)
            except ConnectionError:
                return
            except Exception:
                logger.exception("error handling %s %s", request.method, request.path)
                if request._streamed:  # a 500 after part of a body would be read as more of it
                    request.abort()
                    return
                request.keep_alive = False
                response = Response(_INTERNAL_ERROR, "text/plain; charset=utf-8", status=500)
            if self.transport.is_closing():
                return
            if response is not None:
                self.transport.write(response.encode(request))
            if not request.keep_alive:
                self.transport.close()
                return
            if not self._pending:
                self._task = None
                return
            request = self._pending.popleft()

    async def write(self, data: bytes) -> None:
        """Write `data`, waiting while the client is slow to read so memory stays bounded."""
        if self.transport.is_closing():
            raise ConnectionResetError("client disconnected")
        self.transport.write(data)
        if self._paused:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def _bad_request(self, message: str) -> None:
        """Answer a request that cannot be parsed with a 400 and hang up, as nothing after it can be read;
        requests parsed before it in the same read are dropped unanswered, as aiohttp did."""
        self._closed = True
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
        body = message.encode()
        fields = header_lines({"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))})
        self.transport.write(b"HTTP/1.0 400 Bad Request\r\n" + fields + date_line() + b"\r\n" + body)
        self.transport.close()


class HttpServer:
    """Listens on a TCP socket and serves each connection with an `HttpConnection`."""

    def __init__(self, handler: Handler, *, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.connections: set[HttpConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, *, backlog: int, ssl: SSLContext | None = None) -> int:
        """Start listening (TLS with `ssl`); returns the port, the one chosen for it where `port` is 0."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self), host, port, backlog=backlog, reuse_address=True, ssl=ssl
        )
        sockname: Any = self._server.sockets[0].getsockname()
        return int(sockname[1])

    async def stop(self, grace_s: float) -> None:
        """Stop listening, give in-flight handlers `grace_s` to finish, then cancel them and hang up: idle
        connections with a clean close, busy ones with an abort, as their unsent bytes will never be read."""
        assert self._server is not None
        self._server.close()
        tasks = [c._task for c in self.connections if c._task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for connection in list(self.connections):
            if connection._task is None or connection._task.done():
                connection.transport.close()
            else:
                connection.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
