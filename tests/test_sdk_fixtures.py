"""Every stream the SDK records for its own tests, assembled by batchstream exactly as the SDK assembles it.

The streams are vendored in `tests/sdk_fixtures/` (see its README). The SDK's answer comes from its public
API over a real socket: a loopback server sends a stream's bytes as `text/event-stream` to
`AsyncAnthropic(...).messages.stream()` (or `beta.messages.stream()`, for the streams the SDK's own tests feed
to the beta helper) and `get_final_message()`. batchstream's `SSEDecoder` and `MessageAccumulator` get the
same bytes cut into small, awkward pieces, and each stream is also sent with CRLF and bare-CR line endings.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import pytest

from batchstream.errors import StreamProtocolError
from batchstream.transport.accumulate import MessageAccumulator
from batchstream.transport.sse import SSEDecoder

HERE = Path(__file__).parent / "sdk_fixtures"
MANIFEST = json.loads((HERE / "manifest.json").read_text())
STREAMS: dict[str, str] = MANIFEST["streams"]  # SDK path -> "messages" or "beta"

ENDINGS: dict[str, Callable[[bytes], bytes]] = {
    "lf": lambda data: data,
    "crlf": lambda data: data.replace(b"\n", b"\r\n"),
    "cr": lambda data: data.replace(b"\n", b"\r"),
}


def _every(size: int) -> Callable[[bytes], list[int]]:
    return lambda data: list(range(size, len(data), size))


def _inside_characters(data: bytes) -> list[int]:
    """Before every UTF-8 continuation byte (so inside each multi-byte character), and every 61 bytes."""
    return sorted({i for i in range(1, len(data)) if data[i] & 0xC0 == 0x80} | {*range(61, len(data), 61)})


def _between_line_ends(data: bytes) -> list[int]:
    """Between the line endings that end an event ("\\n|\\n", "\\r\\n|\\r\\n", "\\r|\\n", "\\r|\\r")."""
    return [i for i in range(1, len(data)) if data[i - 1] in b"\r\n" and data[i] in b"\r\n"]


def _random(data: bytes) -> list[int]:
    rng = random.Random(len(data))
    cuts, at = [], 0
    while (at := at + rng.randint(1, 40)) < len(data):
        cuts.append(at)
    return cuts


# Each gives the offsets to cut a stream's bytes at.
CHUNKINGS: dict[str, Callable[[bytes], list[int]]] = {
    "whole": lambda data: [],
    "1-byte": _every(1),
    "3-bytes": _every(3),
    "7-bytes": _every(7),
    "inside-utf8": _inside_characters,
    "between-line-ends": _between_line_ends,
    "random": _random,
}


def pieces(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        yield data[start:end]


def stream_bytes(path: str, ending: str) -> bytes:
    return ENDINGS[ending]((HERE / "streams" / path).read_bytes())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replies: dict[str, bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = self.server.replies[self.path.split("/")[1]]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.replies = {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


SERVED: dict[str, bytes] = {}  # the loopback server's replies, by the first part of the request path
ANSWERS: dict[tuple[str, str, str], tuple[dict[str, Any] | None, bool]] = {}


def ask_sdk(server: _Server, data: bytes, helper: str) -> tuple[dict[str, Any] | None, bool]:
    """The SDK's final message as a dict (None when the SDK raised), and whether it saw message_stop."""
    key = str(len(SERVED))
    SERVED[key] = data
    server.replies = SERVED

    async def ask() -> tuple[dict[str, Any] | None, bool]:
        port = server.server_address[1]
        client = anthropic.AsyncAnthropic(
            base_url=f"http://127.0.0.1:{port}/{key}", api_key="x", max_retries=0
        )
        messages: Any = client.beta.messages if helper == "beta" else client.messages
        kinds: list[str] = []
        async with client:
            try:
                async with messages.stream(
                    model="claude-sonnet-4-5", max_tokens=1024, messages=[{"role": "user", "content": "Hi"}]
                ) as stream:
                    kinds = [event.type async for event in stream]
                    final = await stream.get_final_message()
            except ValueError:  # the SDK's "Unable to parse tool parameter JSON from model"
                return None, "message_stop" in kinds
        return final.to_dict(mode="json"), "message_stop" in kinds

    return asyncio.run(ask())


def sdk_answer(server: _Server, path: str, ending: str, helper: str | None = None) -> tuple[Any, bool]:
    """`ask_sdk` on a vendored stream, once per stream, line ending and helper (default: the manifest's)."""
    helper = helper or STREAMS[path]
    if (path, ending, helper) not in ANSWERS:
        ANSWERS[path, ending, helper] = ask_sdk(server, stream_bytes(path, ending), helper)
    return ANSWERS[path, ending, helper]


def ours(chunks: Iterator[bytes]) -> tuple[dict[str, Any] | None, bool]:
    """batchstream's assembly, and whether it counts the stream complete (None when it raised)."""
    decoder, accumulator = SSEDecoder(), MessageAccumulator()
    try:
        for chunk in chunks:
            for event in decoder.feed(chunk):
                accumulator.feed(event)
        return accumulator.message(), accumulator.complete
    except StreamProtocolError:
        return None, accumulator.complete


def result_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The message as a result line holds it (`record.ok_record`): content and what it derives from it."""
    content = message.get("content") or []
    return {
        "content": content,
        "text": "".join(block.get("text", "") for block in content if block.get("type") == "text"),
        "thinking": "".join(
            block.get("thinking", "") for block in content if block.get("type") == "thinking"
        ),
        "tool_calls": [
            {"id": block.get("id"), "name": block.get("name"), "input": block.get("input")}
            for block in content
            if block.get("type") == "tool_use"
        ],
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
        "stop_details": message.get("stop_details"),
        "model": message.get("model"),
        "usage": message.get("usage"),
    }


def test_the_vendored_streams_are_all_there() -> None:
    on_disk = {
        p.relative_to(HERE / "streams").as_posix() for p in (HERE / "streams").rglob("*") if p.is_file()
    }
    assert on_disk == set(STREAMS)
    assert len(STREAMS) >= 20
    # Line endings are swapped by a plain replace, which needs no CR in the recordings themselves.
    assert not any(b"\r" in stream_bytes(path, "lf") for path in STREAMS)


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("path", sorted(STREAMS), ids=lambda path: Path(path).stem)
def test_assembly_matches_the_sdk(server: _Server, path: str, ending: str, chunking: str) -> None:
    expected, sdk_complete = sdk_answer(server, path, ending)
    data = stream_bytes(path, ending)
    got, complete = ours(pieces(data, CHUNKINGS[chunking](data)))
    # The SDK, as the SSE spec says, drops a last event that no blank line ends (some recordings end so):
    # batchstream then never sees message_stop either, and its caller reports the stream cut.
    assert complete == sdk_complete
    if expected is None:  # the SDK refused the stream: so must batchstream
        assert got is None
        return
    assert got is not None
    assert result_fields(got) == result_fields(expected)


BETA_ONLY = "tests/lib/streaming/fixtures/{}_response.txt"


# The plain helper's types have no compaction block, which pydantic warns about when it dumps one.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize("name", ["fallback", "compaction", "fallback_credit"])
def test_beta_features_follow_the_reply_where_the_plain_helper_drops_them(server: _Server, name: str) -> None:
    """batchstream does not know which helper a request would have used, and follows the non-streaming reply.

    The reply names the model that served it after a server-side fallback, holds a compaction block's
    content, and reports the fallback credit in usage. The SDK's beta helper assembles these as the reply
    holds them (the test above checks batchstream against it); its plain `messages.stream()` helper, which
    predates them, keeps the first model, leaves the compaction block's fields null and drops the credit.
    On these, batchstream follows the reply, not the plain helper.
    """
    path = BETA_ONLY.format(name)
    beta, _ = sdk_answer(server, path, "lf")
    plain, _ = sdk_answer(server, path, "lf", helper="messages")
    got, _ = ours(iter([stream_bytes(path, "lf")]))
    assert got is not None
    assert result_fields(got) == result_fields(beta) != result_fields(plain)
