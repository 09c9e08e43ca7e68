"""The simulator's own HTTP/1.1 server, spoken to over raw sockets: connection handling the SDK never
exercises (keep-alive and pipelining, HTTP/1.0, odd methods and paths, bodies over the limit or chunked,
malformed requests, clients that hang up) and that must behave as the aiohttp server it replaced did."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from batchstream.eventloop import new_event_loop
from batchstream.simulator import SimulatorConfig, SimulatorThread
from batchstream.simulator.http import Request, Response
from batchstream.simulator.server import MAX_BODY_BYTES, Simulator
from batchstream.simulator.sleeps import SharedSleeps
from batchstream.simulator.wire import MESSAGE_STOP

AUTH = b"Host: sim\r\nx-api-key: sk-test\r\nanthropic-version: 2023-06-01\r\n"


def payload(text: str, *, stream: bool = False) -> bytes:
    message = {"role": "user", "content": f"{text} [[sim tokens=3]]"}
    return orjson.dumps({"model": "m", "max_tokens": 50, "messages": [message], "stream": stream})


def post(body: bytes, *, version: str = "1.1", extra: bytes = b"", path: bytes = b"/v1/messages") -> bytes:
    head = b"POST %s HTTP/%s\r\n%s%sContent-Length: %d\r\n\r\n"
    return head % (path, version.encode(), AUTH, extra, len(body)) + body


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(ttft_s=0)) as running:
        yield running


def connect(sim: SimulatorThread) -> socket.socket:
    host, port = sim.base_url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def read_response(conn: socket.socket, buffer: bytearray) -> tuple[bytes, dict[str, str], bytes]:
    """One response off `conn`: status line, headers (names lower-cased) and body, de-chunked; what is
    read past its end stays in `buffer` for the next."""
    while b"\r\n\r\n" not in buffer:
        buffer += _recv(conn)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    if "content-length" in headers:
        size = int(headers["content-length"])
        while len(rest) < size:
            rest += _recv(conn)
        body, rest = rest[:size], rest[size:]
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += _recv(conn)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += _recv(conn)
            body, rest = body + rest[:size], rest[size + 2 :]
            if size == 0:
                break
    else:  # ended by the server closing the connection
        while data := conn.recv(65536):
            rest += data
        body, rest = rest, b""
    buffer[:] = rest
    return status.encode(), headers, body


def _recv(conn: socket.socket) -> bytes:
    data = conn.recv(65536)
    assert data, "connection closed mid-response"
    return data


def assert_closed(conn: socket.socket) -> None:
    assert conn.recv(1) == b""


def test_keep_alive_serves_several_requests_on_one_connection(sim: SimulatorThread) -> None:
    with connect(sim) as conn:
        buffer = bytearray()
        for text, stream in (("one", True), ("two", False), ("three", True)):
            conn.sendall(post(payload(text, stream=stream)))
            status, headers, body = read_response(conn, buffer)
            assert status == b"HTTP/1.1 200 OK" and "connection" not in headers
            assert (b"message_stop" in body) == stream
        assert not buffer


def test_pipelined_requests_are_answered_in_order(sim: SimulatorThread) -> None:
    with connect(sim) as conn:
        conn.sendall(
            b"".join(post(payload(f"pipelined {i}")) for i in range(3))
            + b"GET /nowhere HTTP/1.1\r\nHost: sim\r\n\r\n"
        )
        buffer = bytearray()
        ids = []
        for _ in range(3):
            status, _, body = read_response(conn, buffer)
            assert status == b"HTTP/1.1 200 OK"
            ids.append(orjson.loads(body)["id"])
        assert read_response(conn, buffer)[0] == b"HTTP/1.1 404 Not Found"
        assert len(set(ids)) == 3


def test_connection_close_is_honoured(sim: SimulatorThread) -> None:
    with connect(sim) as conn:
        conn.sendall(post(payload("bye"), extra=b"Connection: close\r\n"))
        status, headers, _ = read_response(conn, bytearray())
        assert status == b"HTTP/1.1 200 OK" and headers["connection"] == "close"
        assert_closed(conn)


def test_http_1_0_stream_is_unframed_and_ends_by_closing(sim: SimulatorThread) -> None:
    with connect(sim) as conn:
        conn.sendall(post(payload("old", stream=True), version="1.0", extra=b"Connection: keep-alive\r\n"))
        status, headers, body = read_response(conn, bytearray())
    assert status == b"HTTP/1.0 200 OK"
    assert "transfer-encoding" not in headers and "connection" not in headers
    assert body.startswith(b"event: message_start\n") and body.endswith(MESSAGE_STOP)


def test_http_1_0_keep_alive_only_when_asked(sim: SimulatorThread) -> None:
    with connect(sim) as conn:
        buffer = bytearray()
        for _ in range(2):
            conn.sendall(post(payload("old"), version="1.0", extra=b"Connection: keep-alive\r\n"))
            status, headers, _ = read_response(conn, buffer)
            assert status == b"HTTP/1.0 200 OK" and headers["connection"] == "keep-alive"
    with connect(sim) as conn:
        conn.sendall(post(payload("old"), version="1.0"))
        _, headers, _ = read_response(conn, bytearray())
        assert "connection" not in headers
        assert_closed(conn)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v1/messages HTTP/1.1\r\n" + AUTH + b"\r\n",
        post(payload("x")).replace(b"POST", b"PUT", 1),
        post(payload("x"), path=b"/v1/messages/"),
        post(b"{}", path=b"/_sim/stats"),
        b"GET /_sim/reset HTTP/1.1\r\nHost: sim\r\n\r\n",
        b"DELETE /v1/models HTTP/1.0\r\n\r\n",
    ],
    ids=["get", "put", "trailing-slash", "post-stats", "get-reset", "delete-elsewhere"],
)
def test_anything_but_a_route_is_the_api_404(sim: SimulatorThread, request_bytes: bytes) -> None:
    with connect(sim) as conn:
        conn.sendall(request_bytes)
        status, headers, body = read_response(conn, bytearray())
    assert status.endswith(b" 404 Not Found")
    error = orjson.loads(body)
    assert error["error"] == {"type": "not_found_error", "message": "Not found"}
    assert error["request_id"] == headers["request-id"]


def test_query_string_and_escapes_do_not_change_the_route(sim: SimulatorThread) -> None:
    with connect(sim) as conn:
        conn.sendall(post(payload("q"), path=b"/v1/%6Dessages?beta=true"))
        assert read_response(conn, bytearray())[0] == b"HTTP/1.1 200 OK"


def test_head_answers_headers_only(sim: SimulatorThread) -> None:
    with connect(sim) as conn:
        conn.sendall(
            b"HEAD /_sim/stats HTTP/1.1\r\nHost: sim\r\n\r\nGET /_sim/stats HTTP/1.1\r\nHost: sim\r\n\r\n"
        )
        buffer = bytearray()
        while buffer.count(b"\r\n\r\n") < 2:
            buffer += _recv(conn)
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: " in head
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n")  # the GET's response follows at once: no body


def test_body_over_the_limit_is_the_api_413_and_the_connection_stays_usable(sim: SimulatorThread) -> None:
    big = b'{"model": "' + b"x" * MAX_BODY_BYTES + b'"}'
    with connect(sim) as conn:
        conn.sendall(post(big))
        status, _, body = read_response(conn, bytearray())
        assert status == b"HTTP/1.1 413 Request Entity Too Large"
        assert orjson.loads(body)["error"]["type"] == "request_too_large"
        conn.sendall(post(payload("after")))
        assert read_response(conn, bytearray())[0] == b"HTTP/1.1 200 OK"


def test_chunked_request_body_is_read(sim: SimulatorThread) -> None:
    body = payload("chunky")
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
    )
    with connect(sim) as conn:
        head = b"POST /v1/messages HTTP/1.1\r\n" + AUTH + b"Transfer-Encoding: chunked\r\n\r\n"
        conn.sendall(head + chunks + b"0\r\n\r\n")
        status, _, answer = read_response(conn, bytearray())
    assert status == b"HTTP/1.1 200 OK" and orjson.loads(answer)["type"] == "message"


@pytest.mark.parametrize(
    ("first", "second", "status"),
    [(b"sk-test", b"wrong", b"HTTP/1.1 200 OK"), (b"wrong", b"sk-test", b"HTTP/1.1 401 Unauthorized")],
)
def test_header_names_are_case_blind_and_the_first_value_wins(
    first: bytes, second: bytes, status: bytes
) -> None:
    head = b"POST /v1/messages HTTP/1.1\r\nHost: sim\r\nANTHROPIC-Version: 2023-06-01\r\n"
    keys = b"X-Api-Key: %s\r\nx-api-key: %s\r\n" % (first, second)
    body = payload("which key")
    with SimulatorThread(SimulatorConfig(ttft_s=0, api_key="sk-test")) as sim, connect(sim) as conn:
        conn.sendall(head + keys + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert read_response(conn, bytearray())[0] == status


def test_expect_100_continue_is_answered_before_the_body(sim: SimulatorThread) -> None:
    body = payload("expect")
    with connect(sim) as conn:
        head = (
            b"POST /v1/messages HTTP/1.1\r\n" + AUTH + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"
        )
        conn.sendall(head % len(body))
        assert conn.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body)
        assert read_response(conn, bytearray())[0] == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "garbage",
    [
        b"BLAH\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 requires a Host header
        b"POST / HTTP/1.1\r\nHost: sim\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["no-method", "bad-header", "no-host", "length-and-chunked"],
)
def test_malformed_request_is_a_400_and_a_hang_up(sim: SimulatorThread, garbage: bytes) -> None:
    with connect(sim) as conn:
        conn.sendall(garbage)
        status, headers, _ = read_response(conn, bytearray())
        assert status == b"HTTP/1.0 400 Bad Request" and headers["content-type"].startswith("text/plain")
        assert_closed(conn)


def test_client_hanging_up_cancels_its_handler(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with SimulatorThread(SimulatorConfig(ttft_s=30, log_path=str(log))) as sim:
        with connect(sim) as conn:
            conn.sendall(post(payload("slow")))
            while sim.stats()["requests"] == 0:
                time.sleep(0.01)
        deadline = time.monotonic() + 5
        while not log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert orjson.loads(log.read_bytes())["outcome"] == "client_closed"


def test_a_handler_bug_is_a_500_and_a_hang_up(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(_self: Simulator, _request: Request) -> Response:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Simulator, "_stats", broken)
    with SimulatorThread(SimulatorConfig(ttft_s=0)) as sim, connect(sim) as conn:
        conn.sendall(b"GET /_sim/stats HTTP/1.1\r\nHost: sim\r\n\r\n")
        status, headers, _ = read_response(conn, bytearray())
        assert status == b"HTTP/1.1 500 Internal Server Error" and headers["connection"] == "close"
        assert_closed(conn)


def test_shared_sleeps_wake_each_sleeper_after_its_own_delay() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        sleeps = SharedSleeps()
        started = loop.time()
        gone = loop.create_task(sleeps.sleep(0.05))
        long = [loop.create_task(sleeps.sleep(0.05)) for _ in range(3)]
        short = loop.create_task(sleeps.sleep(0.02))
        await asyncio.sleep(0)
        gone.cancel()  # a client hanging up mid-sleep leaves the others be
        await short
        assert not any(task.done() for task in long)
        await asyncio.gather(*long)
        assert loop.time() - started >= 0.05 - 0.001  # the loop's clock counts whole milliseconds
        assert gone.cancelled()

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
