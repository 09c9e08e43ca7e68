"""A compressed event stream (Content-Encoding: gzip) is decoded before parsing, like an identity one."""

from __future__ import annotations

import asyncio
import gzip

import orjson
from aiohttp import web

from batchstream.inputs import Defaults, Request
from batchstream.transport.streaming import StreamingSender

_EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
     "model": "claude-sonnet-5-5", "content": [], "stop_reason": None, "stop_sequence": None,
     "usage": {"input_tokens": 3, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
     "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]  # fmt: skip
_GZIP = web.AppKey("gzip", bool)
_BODY = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in _EVENTS)


async def _serve(request: web.Request) -> web.Response:
    body = gzip.compress(_BODY) if request.app[_GZIP] else _BODY
    headers = {"content-type": "text/event-stream", "request-id": "req_test"}
    if request.app[_GZIP]:
        headers["content-encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def _message(compressed: bool) -> dict[str, object]:
    app = web.Application()
    app[_GZIP] = compressed
    app.router.add_post("/v1/messages", _serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = StreamingSender(
        api_key="sk-test", base_url=f"http://127.0.0.1:{port}", max_connections=2, stall_timeout=5
    )
    try:
        params = {
            "model": "claude-sonnet-5-5",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        request = Request("a", 1, params, Defaults().betas, False, None, "0" * 16)
        outcome = await client.send(request)
    finally:
        await client.aclose()
        await runner.cleanup()
    return outcome.message


def test_gzip_and_identity_streams_assemble_the_same_message() -> None:
    plain = asyncio.run(_message(False))
    packed = asyncio.run(_message(True))
    assert plain == packed
    assert plain["content"] == [{"type": "text", "text": "Hello there."}]
    assert plain["usage"] == {"input_tokens": 3, "output_tokens": 2}
    assert plain["stop_reason"] == "end_turn"
