"""batchstream against network parts nobody on this project wrote: TLS, interim replies, DNS, no network.

Each check runs the real CLI (`run_items`). What a user wants: replies exact (the simulator's
`expected_reply`, or a per-request text the test server derives from the prompt), and where the network
fails for every request, an outage: the run waits and probes, then stops after --max-outage with exit 4,
one clear line and no item recorded, so that the same command resumes it; never a traceback. A certificate
that does not verify is a setting to fix, not an outage: exit 2 at once.

All of these are quick and need no package beyond the test extras; `unshare -n` needs root (CI has it).
The proxy checks need tinyproxy and live in tests/conformance (`make conformance`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trustme
from conftest import (
    CANNED_SSE,
    ItemsRun,
    assert_exact_replies,
    rows_by_id,
    run_items,
    tls_simulator,
)

from batchstream.inputs import Request
from batchstream.transport.failures import classify
from batchstream.transport.streaming import StreamingSender

# Two attempts, no real waiting; an outage of a second ends the run.
FAST = ("--max-attempts", "2", "--backoff-base", "0.01", "--backoff-cap", "0.01", "--max-outage", "1")
PROMPTS = {f"item-{i}": f"Item {i}: say something." for i in range(4)}


def assert_outage(done: ItemsRun, *message_has: str) -> None:
    """Exit 4, no traceback, no item recorded (as an error or at all), one line naming the last error."""
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.rows == []
    assert "error: the API has been unavailable since " in done.stderr, done.stderr
    assert "longer than --max-outage 1 s (last error: connection_error: " in done.stderr, done.stderr
    assert all(part in done.stderr for part in message_has), done.stderr
    assert "resume with:" in done.stderr


# --- TLS with a test CA ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_https_with_the_test_ca_trusted_gives_exact_replies(tmp_path: Path, ca: trustme.CA) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with tls_simulator(ca, "127.0.0.1") as sim:
        assert sim.base_url.startswith("https://127.0.0.1:")
        done = run_items(
            tmp_path, sim.base_url, PROMPTS, *FAST, env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")}
        )
        assert_exact_replies(done, PROMPTS)
        assert sim.stats()["completed"] == len(PROMPTS)


@pytest.mark.parametrize("case", ["untrusted CA", "wrong host"])
def test_a_certificate_that_does_not_verify_stops_the_run_at_once(
    tmp_path: Path, ca: trustme.CA, case: str
) -> None:
    # Untrusted: the server's certificate is for the right address, but the client trusts another CA only.
    # Wrong host: the client trusts the CA, but the certificate names another host.
    trusted = trustme.CA() if case == "untrusted CA" else ca
    trusted.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    hostname = "127.0.0.1" if case == "untrusted CA" else "api.batchstream.invalid"
    with tls_simulator(ca, hostname) as sim:
        done = run_items(
            tmp_path, sim.base_url, PROMPTS, *FAST, env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")}
        )
        assert sim.stats()["requests"] == 0  # no request was sent over an unverified connection
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.rows == []
    assert "error: the server's TLS certificate does not verify" in done.stderr
    assert "certificate verify failed" in done.stderr


# --- interim 1xx replies before the real one -------------------------------------------------------------

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"


def answer_to(prompt: str) -> str:
    return f"The answer to {prompt!r}"


# What goes before each answer, by request number: nothing, one or two interim replies of either kind.
INTERIM = [b"", CONTINUE, EARLY_HINTS, CONTINUE + EARLY_HINTS, CONTINUE + CONTINUE]


class InterimServer(socketserver.ThreadingTCPServer):
    """Answers request n with `INTERIM[n % 5]` (1xx replies, unasked for), then a 200 event stream whose
    text names the request's prompt, on keep-alive connections, as RFC 9110 (15.2) lets a server do."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), InterimHandler)
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class InterimHandler(socketserver.StreamRequestHandler):
    server: InterimServer

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections += 1
        while self.rfile.readline():  # the request line; b"" when the client hangs up
            headers = {}
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            prompt = orjson.loads(self.rfile.read(int(headers["content-length"])))["messages"][0]["content"]
            with self.server.lock:
                number = self.server.requests
                self.server.requests += 1
            self.wfile.write(INTERIM[number % len(INTERIM)])
            time.sleep(0.01)  # the interim reply goes out on its own, as it would from a real server
            events = CANNED_SSE.replace(b'"text":"Hi."', b'"text":' + orjson.dumps(answer_to(prompt)))
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(e) + 2, e + b"\n\n") for e in events.split(b"\n\n") if e)
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                b"request-id: req_%d\r\n\r\n%s0\r\n\r\n" % (number, chunks)
            )


def test_interim_replies_before_the_answer_leave_every_item_its_own_answer(tmp_path: Path) -> None:
    prompts = {f"item-{i}": f"Question number {i}" for i in range(30)}
    server = InterimServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        done = run_items(tmp_path, server.base_url, prompts, *FAST, "-c", "4")
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    rows = rows_by_id(done)
    assert set(rows) == set(prompts)
    for item, prompt in prompts.items():
        row = rows[item]
        assert (row["status"], row["attempts"], row["text"]) == ("ok", 1, answer_to(prompt)), row
    # Kept-alive connections, each carrying several requests: an interim reply taken for the answer would
    # have left the real answer unread on the connection, to be taken for the next request's.
    assert server.requests == len(prompts)
    assert 1 <= server.connections <= 4


# --- DNS failure -----------------------------------------------------------------------------------------


def test_a_name_that_does_not_resolve_is_an_outage(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761).
    done = run_items(tmp_path, "http://nonexistent.invalid", PROMPTS, *FAST)
    assert_outage(done, "nonexistent.invalid")


# --- a proxy that is not there ---------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_that_is_down_is_an_outage(tmp_path: Path, scheme: str) -> None:
    port = closed_port()
    proxy = f"http://127.0.0.1:{port}"
    env: dict[str, str | None] = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy}
    done = run_items(tmp_path, f"{scheme}://api.batchstream.invalid", PROMPTS, *FAST, env=env)
    # The refusal is the proxy's port: the request went to the proxy, not to a lookup of the API's name.
    assert_outage(done, f"'127.0.0.1', {port})")


# --- no network at all, and an address that swallows connections ----------------------------------------


def unshare_net_problem() -> str | None:
    """Why `unshare -n` cannot run here (no binary, no privilege), or None when it can."""
    if shutil.which("unshare") is None:
        return "no `unshare` binary (util-linux)"
    try:
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`unshare -n true` could not run: {exc}"
    if probe.returncode != 0:
        return f"`unshare -n true` failed (needs root or CAP_SYS_ADMIN): {probe.stderr.strip()}"
    return None


@pytest.mark.parametrize("base_url", ["https://api.anthropic.com", "http://127.0.0.1:9"])
def test_without_any_network_the_run_is_in_an_outage(tmp_path: Path, base_url: str) -> None:
    problem = unshare_net_problem()
    if problem is not None:
        pytest.skip(f"a network namespace is not available: {problem}")
    # A new network namespace holds only a loopback device that is down: no name resolves, no route exists.
    done = run_items(tmp_path, base_url, PROMPTS, *FAST, prefix=("unshare", "-n"))
    assert_outage(done)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An address that takes no connection and refuses none: a listener whose accept queue is full, so
    Linux drops every further SYN, as a firewall that drops packets does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    queued = []
    for _ in range(8):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(address)
        queued.append(sock)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        with pytest.raises(TimeoutError):
            probe.connect(address)
        yield f"http://127.0.0.1:{address[1]}"
    finally:
        for sock in [probe, *queued, listener]:
            sock.close()


def test_an_address_that_swallows_connections_times_each_item_out(tmp_path: Path, black_hole: str) -> None:
    # --timeout is the user's limit on one attempt, which a long reply may pass too: the items' own errors,
    # not an outage (the connect timeout, 10 s, is one: a connection error).
    done = run_items(tmp_path, black_hole, PROMPTS, *FAST, "--timeout", "0.5")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    rows = rows_by_id(done)
    assert set(rows) == set(PROMPTS)
    for row in rows.values():
        assert row["status"] == "error" and row["text"] is None, row
        assert row["error"] == {
            "type": "timeout",
            "message": "no reply within --timeout 0.5s",
            "status": None,
        }
        assert (row["attempts"], row["retries"]) == (2, {"timeout": 1}), row


def test_a_connect_timeout_is_a_connection_failure_not_a_stall(black_hole: str) -> None:
    """No connection within the connect timeout says the way to the server is down (an outage's cause), not
    that a stream went quiet."""

    async def attempt() -> BaseException:
        sender = StreamingSender(
            api_key="sk-test", base_url=black_hole, max_connections=1, stall_timeout=5, connect_timeout=0.3
        )
        params = {
            "model": "claude-sonnet-5-5",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        try:
            await sender.send(Request("a", 1, params, (), False, None, ""))
        except Exception as exc:
            return exc
        finally:
            await sender.aclose()
        raise AssertionError("a black hole answered")

    failure = classify(asyncio.run(attempt()))
    assert (failure.cause, failure.type, failure.outage) == ("connection", "connection_error", True)
    assert failure.message.startswith("ConnectTimeout: ")
