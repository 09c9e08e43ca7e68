"""batchstream's own HTTP/1.1 client (`connections.py`), against servers that answer byte for byte.

Each server here is a few lines of asyncio that write exactly the reply a test needs: every way a reply can
be framed, keep-alive and its end, a stall, a cut, TLS, a CONNECT proxy. The client must hand over the same
bytes, reuse connections it may reuse and fail with the error the retry policy expects for each fault.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httptools
import pytest
import trustme
from conftest import CANNED_SSE, cli_env, read_jsonl, run_cli, write_jsonl

from batchstream.connections import ConnectionLost, ConnectionPool, Endpoint, Reply, StallTimeout, _Connection
from batchstream.errors import UsageError
from batchstream.inputs import Request
from batchstream.retry import classify
from batchstream.simulator import SimulatorThread
from batchstream.stream import StreamClient

# What a handler writes for one request, given the request's body; None writes nothing (a stall).
Answer = Callable[["Received"], Awaitable[bytes | None]]


@dataclass
class Received:
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int


@dataclass
class Server:
    port: int
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    closed: list[int] = field(default_factory=list)  # connection numbers, in the order they closed
    # Set to close each connection right after its reply is written.
    close_after_reply: bool = False


class _Handler(asyncio.Protocol):
    def __init__(self, server: Server, answer: Answer) -> None:
        self.server = server
        self.answer = answer
        self.parser = httptools.HttpRequestParser(self)
        self.headers: dict[str, str] = {}
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not derive from it
        self.server.connections += 1
        self.number = self.server.connections

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.closed.append(self.number)

    def on_url(self, url: bytes) -> None:
        self.target = url.decode()
        self.headers, self.body = {}, b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        received = Received(self.target, self.headers, self.body, self.number)
        self.server.received.append(received)
        self.replying = asyncio.ensure_future(self._reply(received))

    async def _reply(self, received: Received) -> None:
        reply = await self.answer(received)
        if reply is not None and not self.transport.is_closing():
            self.transport.write(reply)
            if self.server.close_after_reply:
                self.transport.close()


async def serve(answer: Answer, tls: ssl.SSLContext | None = None) -> tuple[Server, asyncio.AbstractServer]:
    server = Server(0)
    listener = await asyncio.get_running_loop().create_server(
        lambda: _Handler(server, answer), "127.0.0.1", 0, ssl=tls
    )
    server.port = listener.sockets[0].getsockname()[1]
    return server, listener


def chunked(*parts: bytes, end: bool = True) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return body + (b"0\r\n\r\n" if end else b"")


HEAD_200 = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_1\r\n"


def canned(reply: bytes) -> Answer:
    async def answer(received: Received) -> bytes:
        return reply

    return answer


def endpoint(port: int, scheme: str = "http", host: str = "127.0.0.1") -> Endpoint:
    return Endpoint.for_url(f"{scheme}://{host}:{port}/v1/messages", {"x-test": "1"})


async def post(pool: ConnectionPool, where: Endpoint, body: bytes = b'{"a":1}') -> tuple[Reply, bytes]:
    parts: list[bytes] = []
    reply = await pool.post(where, body, parts.append)
    return reply, b"".join(parts)


def new_pool(stall: float = 5.0) -> ConnectionPool:
    return ConnectionPool(max_connections=8, connect_timeout=5.0, stall_timeout=stall)


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every case on both loops: a run uses uvloop where it is installed, asyncio's own loop elsewhere."""
    if request.param == "asyncio":
        yield
        return
    uvloop = pytest.importorskip("uvloop")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(None)


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- framing ----------------------------------------------------------------------------------------------

FRAMINGS = {
    # One chunk per event, as the API sends them.
    "chunked": HEAD_200
    + b"transfer-encoding: chunked\r\n\r\n"
    + chunked(*(event + b"\n\n" for event in CANNED_SSE.split(b"\n\n")[:-1])),
    "content-length": HEAD_200 + b"content-length: %d\r\n\r\n" % len(CANNED_SSE) + CANNED_SSE,
    "until close": HEAD_200 + b"connection: close\r\n\r\n" + CANNED_SSE,
}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_every_framing_hands_over_the_exact_body(framing: str) -> None:
    async def main() -> tuple[Reply, bytes, Server]:
        server, listener = await serve(canned(FRAMINGS[framing]))
        server.close_after_reply = framing == "until close"
        pool = new_pool()
        try:
            reply, body = await post(pool, endpoint(server.port), b'{"model":"m"}')
        finally:
            pool.close()
            listener.close()
        return reply, body, server

    reply, body, server = asyncio.run(main())
    assert body == CANNED_SSE
    assert reply.status == 200
    assert reply.headers["request-id"] == "req_1"
    assert reply.body == b""
    [received] = server.received
    assert received.target == "/v1/messages"
    assert received.body == b'{"model":"m"}'
    assert received.headers == {
        "host": f"127.0.0.1:{server.port}",
        "x-test": "1",
        "content-length": "13",
    }


# -- keep-alive -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framing", "connections"),
    [("chunked", [1, 1, 1, 1]), ("until close", [1, 2, 3, 4])],
    ids=["kept open: reused", "closed after each reply: a new one each time"],
)
def test_a_connection_is_reused_while_the_server_keeps_it_open(framing: str, connections: list[int]) -> None:
    async def main() -> Server:
        server, listener = await serve(canned(FRAMINGS[framing]))
        server.close_after_reply = framing == "until close"
        pool = new_pool()
        try:
            for _ in range(4):
                _, body = await post(pool, endpoint(server.port))
                assert body == CANNED_SSE
        finally:
            pool.close()
            listener.close()
        return server

    assert [received.connection for received in asyncio.run(main()).received] == connections


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_an_idle_connection_keeps_nothing_of_the_exchange_it_served(encoding: str) -> None:
    """A thousand idle connections must not hold a thousand finished replies' parsers until their next use."""

    class Sink:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def feed(self, part: bytes) -> None:
            self.parts.append(part)

    body = CANNED_SSE if encoding == "identity" else gzip.compress(CANNED_SSE)
    reply = HEAD_200 + b"content-encoding: %s\r\ncontent-length: %d\r\n\r\n" % (encoding.encode(), len(body))

    async def main() -> tuple[bytes, weakref.ref[Sink], int]:
        server, listener = await serve(canned(reply + body))
        pool = new_pool()
        try:
            sink = Sink()
            await pool.post(endpoint(server.port), b"{}", sink.feed)
            received, gone = b"".join(sink.parts), weakref.ref(sink)
            del sink
            return received, gone, len(pool._idle[endpoint(server.port)])
        finally:
            pool.close()
            listener.close()

    received, gone, idle = asyncio.run(main())
    assert received == CANNED_SSE
    assert idle == 1
    assert gone() is None


def test_drain_closes_idle_connections_now_and_busy_ones_once_their_reply_is_in() -> None:
    async def main() -> tuple[Server, list[int], list[int]]:
        release = asyncio.Event()

        async def answer(received: Received) -> bytes:
            if received.body == b'{"slow":1}':
                await release.wait()
            return FRAMINGS["chunked"]

        server, listener = await serve(answer)
        pool = new_pool()
        try:
            slow = asyncio.ensure_future(post(pool, endpoint(server.port), b'{"slow":1}'))
            while not server.received:
                await asyncio.sleep(0.01)
            await post(pool, endpoint(server.port))  # on a second connection, idle afterwards
            pool.drain()
            await asyncio.sleep(0.05)
            closed_while_busy = list(server.closed)
            release.set()
            reply, body = await slow
            assert (reply.status, body) == (200, CANNED_SSE)
            await asyncio.sleep(0.05)
            closed_after_reply = list(server.closed)
            # A retry after the drain still gets through, on a new connection.
            assert (await post(pool, endpoint(server.port)))[1] == CANNED_SSE
        finally:
            pool.close()
            listener.close()
        return server, closed_while_busy, closed_after_reply

    server, closed_while_busy, closed_after_reply = asyncio.run(main())
    assert closed_while_busy == [2]
    assert closed_after_reply == [2, 1]
    assert [received.connection for received in server.received] == [1, 2, 3]


# What a server may send on an idle keep-alive connection before it closes it.
IDLE_GOODBYES = {
    "nothing": b"",
    "a 408": b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
}


@pytest.mark.parametrize("goodbye", IDLE_GOODBYES)
def test_an_idle_connection_the_server_closed_is_replaced(goodbye: str) -> None:
    async def main() -> Server:
        server, listener = await serve(canned(FRAMINGS["chunked"] + IDLE_GOODBYES[goodbye]))
        server.close_after_reply = True  # but the reply says keep-alive: the close comes while idle
        pool = new_pool()
        try:
            await post(pool, endpoint(server.port))
            await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
            reply, body = await post(pool, endpoint(server.port))
            assert (reply.status, body) == (200, CANNED_SSE)
        finally:
            pool.close()
            listener.close()
        return server

    assert [received.connection for received in asyncio.run(main()).received] == [1, 2]


def test_at_most_max_connections_are_open_at_once() -> None:
    async def main() -> Server:
        async def slow(received: Received) -> bytes:
            await asyncio.sleep(0.05)
            return FRAMINGS["chunked"]

        server, listener = await serve(slow)
        pool = ConnectionPool(max_connections=3, connect_timeout=5, stall_timeout=5)
        try:
            await asyncio.gather(*(post(pool, endpoint(server.port)) for _ in range(9)))
        finally:
            pool.close()
            listener.close()
        return server

    server = asyncio.run(main())
    assert len(server.received) == 9
    assert server.connections == 3


# -- errors and faults ------------------------------------------------------------------------------------


def test_an_error_answer_keeps_its_body_and_headers() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    answer = (
        b"HTTP/1.1 529 Site Overloaded\r\ncontent-type: application/json\r\nX-Should-Retry: true\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )

    async def main() -> tuple[Reply, bytes]:
        server, listener = await serve(canned(answer))
        pool = new_pool()
        try:
            return await post(pool, endpoint(server.port))
        finally:
            pool.close()
            listener.close()

    reply, streamed = asyncio.run(main())
    assert (reply.status, reply.body, streamed) == (529, body, b"")
    assert reply.headers["x-should-retry"] == "true"
    assert ("X-Should-Retry", "true") in reply.raw_headers


def failure_of(
    answer: Answer, *, close_after_reply: bool = False, stall: float = 5.0
) -> tuple[BaseException, float]:
    """One exchange with a server that answers `answer`: the error it ends with, and after how long."""

    async def main() -> tuple[BaseException, float]:
        server, listener = await serve(answer)
        server.close_after_reply = close_after_reply
        pool = new_pool(stall=stall)
        # time.monotonic, the clock the stall check reads: uvloop's loop.time() counts whole
        # milliseconds, so a difference of two readings can fall just short of the true wait.
        started = time.monotonic()
        try:
            await post(pool, endpoint(server.port))
        except Exception as exc:
            return exc, time.monotonic() - started
        finally:
            pool.close()
            listener.close()
        raise AssertionError("the exchange succeeded")

    return asyncio.run(main())


def test_a_stream_cut_mid_chunk_is_a_lost_connection() -> None:
    cut = HEAD_200 + b"transfer-encoding: chunked\r\n\r\n" + chunked(CANNED_SSE[:100], end=False)
    error, _ = failure_of(canned(cut), close_after_reply=True)
    assert isinstance(error, ConnectionLost)
    assert str(error) == "the server closed the connection before the reply was complete"
    assert classify(error).cause == "connection"


def test_silence_longer_than_the_stall_timeout_is_a_stall() -> None:
    async def silent(received: Received) -> None:
        return None

    error, waited = failure_of(silent, stall=0.2)
    assert isinstance(error, StallTimeout)
    assert str(error) == "no data received for 0.2 s"
    assert classify(error).cause == "stall"
    assert 0.2 <= waited < 2


@pytest.mark.parametrize("idle", [0.2, 0.4])
def test_a_reused_connection_gets_the_whole_stall_timeout_from_the_start_of_its_exchange(idle: float) -> None:
    """The stall timer outlives an exchange: idle for part of a timeout or for more than one, the next
    exchange on the connection is still given the whole timeout from its own start."""
    replies = iter([FRAMINGS["chunked"]])

    async def first_then_silent(received: Received) -> bytes | None:
        return next(replies, None)

    async def main() -> tuple[BaseException, float, int]:
        server, listener = await serve(first_then_silent)
        pool = new_pool(stall=0.3)
        try:
            await post(pool, endpoint(server.port))
            await asyncio.sleep(idle)
            started = time.monotonic()
            try:
                await post(pool, endpoint(server.port))
            except StallTimeout as exc:
                return exc, time.monotonic() - started, server.connections
            raise AssertionError("the silent exchange succeeded")
        finally:
            pool.close()
            listener.close()

    error, waited, connections = asyncio.run(main())
    assert str(error) == "no data received for 0.3 s"
    assert connections == 1
    assert 0.3 <= waited < 2


def test_a_slow_stream_that_keeps_sending_is_not_a_stall() -> None:
    events = [event + b"\n\n" for event in CANNED_SSE.split(b"\n\n")[:-1]]

    class Trickle(_Handler):
        async def _reply(self, received: Received) -> None:
            self.transport.write(HEAD_200 + b"transfer-encoding: chunked\r\n\r\n")
            for event in events:  # 6 events 0.1 s apart: 0.6 s in all, never 0.25 s silent
                await asyncio.sleep(0.1)
                self.transport.write(chunked(event, end=False))
            self.transport.write(b"0\r\n\r\n")

    async def main() -> bytes:
        server = Server(0)
        listener = await asyncio.get_running_loop().create_server(
            lambda: Trickle(server, canned(b"")), "127.0.0.1", 0
        )
        pool = new_pool(stall=0.25)
        try:
            return (await post(pool, endpoint(listener.sockets[0].getsockname()[1])))[1]
        finally:
            pool.close()
            listener.close()

    assert asyncio.run(main()) == CANNED_SSE


def test_a_reply_that_is_not_http_is_a_lost_connection() -> None:
    error, _ = failure_of(canned(b"SSH-2.0-OpenSSH_9.2\r\n"))
    assert isinstance(error, ConnectionLost)
    assert str(error).startswith("the reply is not valid HTTP/1.1: ")


def test_nothing_listening_is_a_refused_connection() -> None:
    async def main() -> None:
        listener = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        pool = new_pool()
        try:
            with pytest.raises(ConnectionRefusedError):
                await post(pool, endpoint(port))
        finally:
            pool.close()

    asyncio.run(main())


# -- names, TLS and proxies -------------------------------------------------------------------------------


def test_a_host_name_is_looked_up_once_for_many_new_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> tuple[Server, list[str]]:
        loop = asyncio.get_running_loop()
        lookups: list[str] = []
        real = loop.getaddrinfo

        async def counted(host: str, *args: object, **kwargs: object) -> object:
            lookups.append(host)
            return await real(host, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(loop, "getaddrinfo", counted)

        async def slow(received: Received) -> bytes:
            await asyncio.sleep(0.05)
            return FRAMINGS["chunked"]

        server, listener = await serve(slow)
        pool = new_pool()
        try:
            await asyncio.gather(*(post(pool, endpoint(server.port, host="localhost")) for _ in range(8)))
        finally:
            pool.close()
            listener.close()
        return server, lookups

    server, lookups = asyncio.run(main())
    assert server.connections == 8
    assert lookups == ["localhost"]


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(
    certificate_authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ssl.SSLContext:
    """A server context for `localhost`, whose CA the client trusts through SSL_CERT_FILE."""
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost").configure_cert(context)
    return context


def _request() -> Request:
    params = {"model": "claude-sonnet-5-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
    return Request("a", 1, params, (), False, None, "")


async def _stream_once(base_url: str) -> dict[str, object]:
    client = StreamClient(api_key="sk-test", base_url=base_url, max_connections=2, stall_timeout=5)
    try:
        return (await client.stream(_request())).message
    finally:
        await client.aclose()


def test_https_is_verified_against_the_trusted_certificates(trusted: ssl.SSLContext) -> None:
    async def main() -> tuple[dict[str, object], Server]:
        server, listener = await serve(canned(FRAMINGS["chunked"]), tls=trusted)
        try:
            return await _stream_once(f"https://localhost:{server.port}"), server
        finally:
            listener.close()

    message, server = asyncio.run(main())
    assert message["content"] == [{"type": "text", "text": "Hi."}]
    assert server.received[0].headers["host"] == f"localhost:{server.port}"


def test_https_with_an_untrusted_certificate_is_refused(
    trusted: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("SSL_CERT_FILE", str(other))

    async def main() -> Server:
        server, listener = await serve(canned(FRAMINGS["chunked"]), tls=trusted)
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                await _stream_once(f"https://localhost:{server.port}")
        finally:
            listener.close()
        return server

    assert asyncio.run(main()).received == []


class _ConnectProxy(asyncio.Protocol):
    """Answers CONNECT with 200, then relays bytes both ways: what an https proxy does."""

    def __init__(self, seen: list[tuple[str, str | None]]) -> None:
        self.seen = seen
        self.buffer = b""
        self.upstream: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            head = self.buffer.split(b"\r\n\r\n")[0].decode().split("\r\n")
            headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in head[1:])}
            authority = head[0].split()[1]
            self.seen.append((head[0], headers.get("proxy-authorization")))
            self.opening = asyncio.ensure_future(self._open(authority))

    async def _open(self, authority: str) -> None:
        port = int(authority.rsplit(":", 1)[1])
        downstream = self.transport

        class Back(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                downstream.write(data)

            def connection_lost(self, exc: Exception | None) -> None:
                downstream.close()

        loop = asyncio.get_running_loop()
        self.upstream, _ = await loop.create_connection(Back, "127.0.0.1", port)
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


@pytest.mark.parametrize("proxy_scheme", ["http", "https"])
def test_https_through_a_proxy_is_tunnelled_with_connect(
    trusted: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, proxy_scheme: str
) -> None:
    async def main() -> tuple[dict[str, object], list[tuple[str, str | None]], int]:
        server, listener = await serve(canned(FRAMINGS["chunked"]), tls=trusted)
        seen: list[tuple[str, str | None]] = []
        # An https:// proxy is itself reached over TLS: the API's TLS then runs inside the proxy's.
        proxy = await asyncio.get_running_loop().create_server(
            lambda: _ConnectProxy(seen), "127.0.0.1", 0, ssl=trusted if proxy_scheme == "https" else None
        )
        proxy_port = proxy.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTPS_PROXY", f"{proxy_scheme}://user:p%40ss@localhost:{proxy_port}")
        try:
            return await _stream_once(f"https://localhost:{server.port}"), seen, server.port
        finally:
            listener.close()
            proxy.close()

    message, seen, port = asyncio.run(main())
    assert message["content"] == [{"type": "text", "text": "Hi."}]
    assert seen == [
        (f"CONNECT localhost:{port} HTTP/1.1", "Basic " + base64.b64encode(b"user:p@ss").decode())
    ]


def test_http_through_a_proxy_names_the_whole_url_and_sends_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> Server:
        server, listener = await serve(canned(FRAMINGS["chunked"]))
        monkeypatch.setenv("HTTP_PROXY", f"http://me:secret@127.0.0.1:{server.port}")
        try:
            message = await _stream_once("http://api.batchstream.invalid:8080")
            assert message["content"] == [{"type": "text", "text": "Hi."}]
        finally:
            listener.close()
        return server

    [received] = asyncio.run(main()).received
    assert received.target == "http://api.batchstream.invalid:8080/v1/messages"
    assert received.headers["host"] == "api.batchstream.invalid:8080"
    assert received.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"me:secret").decode()


def test_no_proxy_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert endpoint(8080).proxy is None
    assert endpoint(8080).head.startswith(b"POST /v1/messages HTTP/1.1\r\n")


def test_connections_use_tcp_keepalive_as_the_sdk_does() -> None:
    async def main() -> list[int]:
        server, listener = await serve(canned(FRAMINGS["chunked"]))
        pool = new_pool()
        try:
            await post(pool, endpoint(server.port))
            [connection] = pool._idle[endpoint(server.port)]
            sock = connection._transport.get_extra_info("socket")  # type: ignore[union-attr]
            return [
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            ]
        finally:
            pool.close()
            listener.close()

    assert asyncio.run(main()) == [1, 60, 60, 5]


@pytest.mark.parametrize(("stall", "in_exchange"), [(61.0, 1), (60.0, 0)])
def test_keepalive_is_on_in_an_exchange_only_if_the_stall_check_waits_past_its_first_probe(
    stall: float, in_exchange: int
) -> None:
    """Keep-alive probes a silent peer after 60 s; a stall check that gives up sooner finds it out first."""

    def keepalive(connection: _Connection) -> int:
        sock = connection._transport.get_extra_info("socket")  # type: ignore[union-attr]
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    async def main() -> tuple[int, int]:
        server, listener = await serve(canned(FRAMINGS["chunked"]))
        pool = new_pool(stall)
        during: list[int] = []

        def sink(chunk: bytes) -> None:
            if not during:
                [connection] = pool._open
                during.append(keepalive(connection))

        try:
            await pool.post(endpoint(server.port), b"{}", sink)
            [connection] = pool._idle[endpoint(server.port)]
            return during[0], keepalive(connection)
        finally:
            pool.close()
            listener.close()

    assert asyncio.run(main()) == (in_exchange, 1)


def test_a_proxy_the_direct_transport_cannot_use_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:hunter2@127.0.0.1:1080")

    async def main() -> None:
        with pytest.raises(UsageError) as caught:
            await _stream_once("https://api.batchstream.invalid")
        assert str(caught.value) == (
            "proxy socks5://127.0.0.1: the direct transport reaches http:// and https:// proxies only "
            "(--transport sdk hands the proxy to the SDK's HTTP client instead)"
        )

    asyncio.run(main())


def test_run_stops_with_exit_2_on_a_proxy_it_cannot_use(tmp_path: Path, simulator: SimulatorThread) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Hi"}, {"id": "b", "prompt": "Yo"}])
    env = cli_env(simulator.base_url, HTTP_PROXY="socks5://user:hunter2@127.0.0.1:1080", NO_PROXY="")
    done = run_cli("run", source, "-q", env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "batchstream: error: proxy socks5://127.0.0.1: the direct transport reaches http:// and https:// "
        "proxies only (--transport sdk hands the proxy to the SDK's HTTP client instead)"
    )
    assert "hunter2" not in done.stderr + done.stdout
    assert simulator.stats()["requests"] == 0
    assert read_jsonl(tmp_path / "in.results.jsonl") == []
