"""A small HTTP/1.1 client for the one exchange batchstream makes: POST a JSON body, stream the reply.

aiohttp spends about 0.3 ms of CPU per request on things this exchange never uses: request and response
objects, header multidicts, a stream reader that wakes a future for every chunk, a read timer re-armed on
every read. With a thousand streams open, each wave of launches is spread out by that much per request, and
the whole batch finishes that much later. This client keeps what the exchange needs: keep-alive
connections per endpoint, each reply parsed by llhttp (`httptools`) as its bytes arrive, and the body handed
straight to the caller, with no queue or task switch in between.

What it covers: http and https (the system's CA store, or `SSL_CERT_FILE`), `HTTP_PROXY` / `HTTPS_PROXY` /
`ALL_PROXY` / `NO_PROXY` as the SDK honours them (http:// and https:// proxies; an https API is tunnelled
with CONNECT), TCP keep-alive as the SDK sets it, replies framed by length, by chunks or by the connection
closing, and gzip or deflate bodies.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

import httptools

from .deadline import Deadline

BodySink = Callable[[bytes], None]

# How long a looked-up address is used for new connections (aiohttp's default too).
_DNS_TTL_S = 10.0
# TCP keep-alive as the SDK's own client sets it: a connection idle in the pool, or a stream in a long
# pause, is probed after 60 s, so one a middlebox dropped is found out rather than waited on.
_KEEPALIVE_IDLE_S = 60
_KEEPALIVE = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    *(
        (socket.IPPROTO_TCP, getattr(socket, name), value)
        for name, value in (("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5), ("TCP_KEEPIDLE", _KEEPALIVE_IDLE_S))
        if hasattr(socket, name)
    ),
]


class ConnectionLost(ConnectionError):
    """The connection closed, or the reply broke HTTP, before the reply was complete."""


class StallTimeout(TimeoutError):
    """No byte of the reply arrived for the stall timeout."""


class Reply(NamedTuple):
    """One answer's status and headers (a named tuple: one is built per request, at a quarter of a frozen
    dataclass's cost)."""

    status: int
    # Names lower-cased; a repeated header keeps its last value.
    headers: dict[str, str]
    # As received, for building the SDK's error from it.
    raw_headers: list[tuple[str, str]]
    # The whole body of an error answer (status >= 400); a success's body went to the sink.
    body: bytes


@dataclass(frozen=True, slots=True)
class _Proxy:
    host: str
    port: int
    tls: bool  # an https:// proxy: TLS to the proxy itself (and, for an https API, TLS inside that)
    authorization: str | None  # the Proxy-Authorization value, from credentials in the proxy URL


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the requests for one URL go, and the request head they start with there."""

    host: str
    port: int
    tls: bool
    proxy: _Proxy | None
    # Everything before Content-Length: request line, Host, the caller's headers.
    head: bytes

    @classmethod
    def for_url(cls, url: str, headers: dict[str, str]) -> Endpoint:
        """The endpoint for `url`, with the proxy the environment names for it looked up once, here."""
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if tls else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        proxy = _proxy_for(parts.scheme, parts.hostname)
        if proxy is not None and not tls:
            # A plain-http request through a proxy names the whole URL; https goes through a CONNECT tunnel.
            target = f"http://{parts.netloc}{target}"
            if proxy.authorization:
                headers = {**headers, "proxy-authorization": proxy.authorization}
        lines = [f"POST {target} HTTP/1.1", f"host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        return cls(parts.hostname, port, tls, proxy, head)


def _proxy_for(scheme: str, host: str) -> _Proxy | None:
    proxies = getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or proxy_bypass_environment(host, proxies):
        return None
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"proxy {parts.scheme}://{parts.hostname}: the direct transport reaches http:// and https:// "
            "proxies only (--transport sdk hands the proxy to the SDK's HTTP client instead)"
        )
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    tls = parts.scheme == "https"
    return _Proxy(parts.hostname, parts.port or (443 if tls else 80), tls, authorization)


class ConnectionPool:
    """Keep-alive connections, reused per endpoint; at most `max_connections` exchanges at once."""

    def __init__(self, *, max_connections: int, connect_timeout: float, stall_timeout: float) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._connect_timeout = connect_timeout
        self._stall_timeout = stall_timeout
        self._idle: dict[Endpoint, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._tls: ssl.SSLContext | None = None
        self._resolved: dict[tuple[str, int], tuple[float, asyncio.Future[list[Any]]]] = {}
        # In an exchange a silent peer is found out by the stall check, before keep-alive's first probe
        # unless the check waits longer. So keep-alive is set when a connection first goes idle, not as
        # it opens: ~6 µs less per connection on the first wave, which opens one per concurrent item.
        self._keepalive_at_open = stall_timeout > _KEEPALIVE_IDLE_S
        self._draining = False

    async def post(self, endpoint: Endpoint, body: bytes, sink: BodySink) -> Reply:
        """Send `body` and wait for the whole reply; a success's body goes to `sink` as it arrives."""
        async with self._slots:
            connection = await self._connection(endpoint)
            try:
                reply = await connection.exchange(
                    endpoint.head + b"content-length: %d\r\n\r\n" % len(body) + body, sink
                )
            except BaseException:
                # Whatever was left unread makes the connection useless, and a cancelled exchange may be
                # half sent.
                connection.abort()
                raise
            if connection.reusable and not self._draining:
                if not connection.kept_alive:
                    connection.keep_alive()
                self._idle.setdefault(endpoint, []).append(connection)
            else:
                connection.abort()
            return reply

    def drain(self) -> None:
        """Nothing more is to be sent: close the idle connections now, and each busy one once its reply is in.

        Left open, they would only wait for the end of the run, where closing a thousand at once holds up
        the exit; and each would first be set up for keep-alive as it went idle. A request sent after this
        (a retry) still gets a connection, a new one.
        """
        self._draining = True
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
            idle.clear()

    def close(self) -> None:
        for connection in list(self._open):
            connection.abort()
        self._idle.clear()

    async def _connection(self, endpoint: Endpoint) -> _Connection:
        idle = self._idle.get(endpoint)
        while idle:
            connection = idle.pop()
            if connection.reusable:
                return connection
        try:
            with Deadline(self._connect_timeout):
                connection = await self._connect(endpoint)
        except TimeoutError:
            where = endpoint.proxy or endpoint
            raise ConnectionLost(
                f"no connection to {where.host}:{where.port} within {self._connect_timeout:g} s"
            ) from None
        if self._keepalive_at_open:
            connection.keep_alive()
        return connection

    async def _connect(self, endpoint: Endpoint) -> _Connection:
        proxy = endpoint.proxy
        tls = self._tls_context() if endpoint.tls else None
        connection = _Connection(self._open, self._stall_timeout)
        if proxy is None:
            await self._open_socket(lambda: connection, endpoint.host, endpoint.port, tls)
            return connection
        proxy_tls = self._tls_context() if proxy.tls else None
        if tls is None:
            await self._open_socket(lambda: connection, proxy.host, proxy.port, proxy_tls)
        else:
            transport = await self._open_socket(_TunnelReply, proxy.host, proxy.port, proxy_tls)
            try:
                await _open_tunnel(transport, endpoint, proxy)
                tls_transport = await asyncio.get_running_loop().start_tls(
                    transport, connection, tls, server_hostname=endpoint.host
                )
            except BaseException:
                transport.abort()
                raise
            assert tls_transport is not None
            connection.connection_made(tls_transport)
        return connection

    async def _open_socket(
        self,
        factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
    ) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        # Connecting to an address, the name the certificate must carry is still the host's.
        server_hostname = host if tls is not None else None
        addresses = [host] if _is_address(host) else await self._addresses(host, port)
        for address in addresses[:-1]:
            try:
                transport, _ = await loop.create_connection(
                    factory, address, port, ssl=tls, server_hostname=server_hostname
                )
                break
            except OSError:
                continue  # the next address may answer (IPv6 without a route, say)
        else:
            transport, _ = await loop.create_connection(
                factory, addresses[-1], port, ssl=tls, server_hostname=server_hostname
            )
        return transport

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The addresses of the name `host`, looked up once per 10 s however many connections open at once.

        asyncio would ask the resolver (in a thread) for every connection: a thousand lookups of the same
        name when the first wave of a large batch opens its connections.
        """
        now = time.monotonic()
        entry = self._resolved.get((host, port))
        if entry is None or entry[0] < now:
            lookup = asyncio.ensure_future(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            )
            entry = self._resolved[(host, port)] = (now + _DNS_TTL_S, lookup)
        try:
            infos = await asyncio.shield(entry[1])
        except OSError:
            self._resolved.pop((host, port), None)  # a failed lookup is not remembered
            raise
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def _tls_context(self) -> ssl.SSLContext:
        # Loading the CA store takes tens of milliseconds: only when an https endpoint is first used.
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


@functools.lru_cache(maxsize=64)
def _is_address(host: str) -> bool:
    """Whether `host` is an IP address rather than a name: worked out once per host, not per connection."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _TunnelReply(asyncio.Protocol):
    """Reads a proxy's answer to CONNECT; what follows it belongs to the TLS connection inside."""

    def __init__(self) -> None:
        self.buffer = b""
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end != -1 and not self.done.done():
            status_line = self.buffer[: self.buffer.find(b"\r\n")].split()
            status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
            self.done.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionLost("the proxy closed the connection during CONNECT"))


async def _open_tunnel(transport: asyncio.Transport, endpoint: Endpoint, proxy: _Proxy) -> None:
    authority = f"{endpoint.host}:{endpoint.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"host: {authority}"]
    if proxy.authorization:
        lines.append(f"proxy-authorization: {proxy.authorization}")
    transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reply = transport.get_protocol()
    assert isinstance(reply, _TunnelReply)
    status = await reply.done
    if not 200 <= status < 300:
        raise ConnectionLost(f"the proxy {proxy.host}:{proxy.port} refused CONNECT {authority}: {status}")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` runs one request on it, parsing the reply as it arrives."""

    __slots__ = (
        "_body",
        "_caller_sink",
        "_done",
        "_error_body",
        "_framed",
        "_header_map",
        "_headers",
        "_headers_done",
        "_inflated",
        "_inflater",
        "_last_read",
        "_loop",
        "_open",
        "_parser",
        "_sink",
        "_stall_timeout",
        "_stall_timer",
        "_status",
        "_transport",
        "kept_alive",
        "on_body",
        "reusable",
    )

    def __init__(self, open_connections: set[_Connection], stall_timeout: float) -> None:
        self._open = open_connections
        self._stall_timeout = stall_timeout
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        # The body's pieces are collected, and handed on once per read (`_deliver`): the API sends one
        # chunk per event, so a read often holds many, and the sink's work per call is then paid once
        # rather than per event. The parser calls the list's own append: no Python frame per chunk.
        self._body: list[bytes] = []
        self.on_body = self._body.append
        self._parser = httptools.HttpResponseParser(self)
        self.reusable = False
        self.kept_alive = False
        # One exchange's state.
        self._done: asyncio.Future[None] | None = None
        self._sink: BodySink = _discard
        self._caller_sink: BodySink = _discard
        self._headers: list[tuple[str, str]] = []
        self._header_map: dict[str, str] = {}
        self._error_body: list[bytes] = []
        self._inflater: zlib._Decompress | None = None
        self._inflated: BodySink = _discard
        self._headers_done = False
        self._status = 0
        self._framed = False
        self._last_read = 0.0
        self._stall_timer: asyncio.TimerHandle | None = None

    async def exchange(self, request: bytes, sink: BodySink) -> Reply:
        assert self._transport is not None
        self.reusable = False
        self._caller_sink = sink
        self._headers = []
        self._error_body = []
        self._inflater = None
        done = self._done = self._loop.create_future()
        self._last_read = time.monotonic()
        if self._stall_timer is None:
            self._stall_timer = self._loop.call_later(self._stall_timeout, self._check_stall)
        self._transport.write(request)
        try:
            await done
        finally:
            # The sinks go with the exchange: kept, they would hold its reply's parser state until the next.
            self._done = None
            self._caller_sink = self._sink = self._inflated = _discard
        return Reply(self._status, self._header_map, self._headers, b"".join(self._error_body))

    def keep_alive(self) -> None:
        if self._transport is None:
            return
        # uvloop hands out a stand-in socket that wraps the descriptor in a new socket object (and asks the
        # kernel for its address) at every setsockopt: one real object for all the options is cheaper.
        stand_in = self._transport.get_extra_info("socket")
        sock = socket.socket(stand_in.family, stand_in.type, stand_in.proto, stand_in.fileno())
        try:
            for option in _KEEPALIVE:
                sock.setsockopt(*option)
        finally:
            sock.detach()
        self.kept_alive = True

    def abort(self) -> None:
        self.reusable = False
        self._stop_stall_timer()
        if self._transport is not None:
            self._transport.abort()

    def _stop_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it.
        self._transport = cast(asyncio.Transport, transport)
        self._open.add(self)

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        try:
            self._parser.feed_data(data)
            self._deliver()
        except httptools.HttpParserCallbackError as exc:
            # The caller's sink raised (an `error` event, a broken stream): that is the exchange's outcome.
            self._fail(exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"the reply is not valid HTTP/1.1: {exc}"))
        except Exception as exc:  # the sink, called after the parser
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._transport = None
        self._stop_stall_timer()
        self._open.discard(self)
        if self._done is None or self._done.done():
            return
        if self._headers_done and not self._framed:
            # The body runs to the end of the connection: its end is the end of the reply.
            self.on_message_complete()
        else:
            self._fail(ConnectionLost("the server closed the connection before the reply was complete"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._done is None or self._done.done():
            # A reply nobody asked for (some servers send a 408 before closing an idle connection): this
            # connection is done for.
            raise ConnectionLost("an unrequested reply")
        self._headers_done = False
        self._framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = status = self._parser.get_status_code()
        headers = self._header_map = {name.lower(): value for name, value in self._headers}
        self._framed = "content-length" in headers or "transfer-encoding" in headers
        encoding = headers.get("content-encoding", "identity").strip().lower()
        sink = self._caller_sink if status < 400 else self._error_body.append
        if encoding == "identity":
            self._sink = sink
        elif encoding in ("gzip", "x-gzip", "deflate"):
            # wbits 47: a gzip or a zlib header, whichever the body starts with.
            self._inflater = zlib.decompressobj(47)
            self._inflated = sink
            self._sink = self._inflate
        else:
            raise ConnectionLost(f"the reply is encoded as {encoding!r}, which was not asked for")

    def _deliver(self) -> None:
        body = self._body
        if body:
            data = body[0] if len(body) == 1 else b"".join(body)
            body.clear()
            self._sink(data)

    def on_message_complete(self) -> None:
        self._deliver()
        if self._inflater is not None:
            rest = self._inflater.flush()
            if rest:
                self._inflated(rest)
        self.reusable = self._transport is not None and self._parser.should_keep_alive()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _inflate(self, chunk: bytes) -> None:
        assert self._inflater is not None
        try:
            data = self._inflater.decompress(chunk)
        except zlib.error as exc:
            raise ConnectionLost(f"the compressed reply is corrupt: {exc}") from None
        self._inflated(data)

    # failure paths

    def _fail(self, exc: BaseException) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)
        self.abort()

    def _check_stall(self) -> None:
        # One timer per connection, moved on only when it fires: cheaper than re-arming one on every read,
        # or setting one for every exchange. Between exchanges it lapses, and the next exchange sets it.
        if self._done is None:
            self._stall_timer = None
            return
        idle = time.monotonic() - self._last_read
        if idle >= self._stall_timeout:
            self._fail(StallTimeout(f"no data received for {self._stall_timeout:g} s"))
        else:
            self._stall_timer = self._loop.call_later(self._stall_timeout - idle, self._check_stall)


def _discard(chunk: bytes) -> None:
    """The sink of a connection between exchanges."""
