"""Bytes on the wire, shaped like the real Messages API so the SDK cannot tell the difference.

Constant events are encoded once at import, delta heads once per (index, type) and block stops once per
index; per-event work is one `orjson.dumps` of the streamed piece. A benchmark sends a thousand requests
at once, so these microseconds decide whether the simulator holds up the client it measures.
"""

from __future__ import annotations

import functools
import math
import random
import time
from typing import Any

import orjson

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Used when a fault or directive forces a status; wording follows what the service says for each.
DEFAULT_ERROR_MESSAGES = {
    400: "Invalid request (simulated).",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "This request would exceed your organization's rate limit. Retry after the retry-after interval.",
    500: "Internal server error",
    504: "Request timeout",
    529: "Overloaded",
}

# What the API answers an account that cannot go on, as users have reported it word for word (status 400,
# invalid_request_error); see https://docs.anthropic.com/en/api/errors.
CREDIT_EXHAUSTED_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)


def usage_limit_message(now_s: float) -> str:
    """The answer once an organisation's monthly spend limit is reached: access returns on the 1st."""
    year, month = time.gmtime(now_s)[:2]
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        "You have reached your specified API usage limits. "
        f"You will regain access on {year:04d}-{month:02d}-01 at 00:00 UTC."
    )


# A monthly spend limit, as a 429 rate_limit_error (reported in NousResearch/hermes-agent#91106): unlike a
# rate limit's 429, it does not clear by waiting a minute.
SPEND_LIMIT_MESSAGE = "This request would exceed your account's monthly spend limit."


def model_not_found_message(model: str) -> str:
    """A model the API does not serve (unknown, or retired): 404 not_found_error."""
    return f"model: {model}"


SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
JSON_CONTENT_TYPE = "application/json"

PING = b'event: ping\ndata: {"type": "ping"}\n\n'
DELTA_TAIL = b"}}\n\n"
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
# An event of a type no client knows yet, as the SDK's own recording sends one (named "message").
UNKNOWN_EVENT = (
    b'event: message\ndata: {"type":"future_event","usage":{"input_tokens":99,"output_tokens":99}}\n\n'
)
ERROR_EVENT = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ids = random.Random()
# Maps each byte value to a base62 character, so an id is one `randbytes` and one `translate`: a tenth of
# the cost of drawing 24 `choices`. The first 8 characters come up 5 times in 256 rather than 4; ids only
# need to be unique, which 24 such characters (over 140 bits) leave them.
_BASE62_OF_BYTE = (BASE62 * 5)[:256].encode()

# The field each streamed delta type carries its piece in.
DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}


def new_id(prefix: str) -> str:
    """`prefix` + "01" + 24 base62 characters, the shape of the service's message and request ids."""
    return prefix + "01" + _ids.randbytes(24).translate(_BASE62_OF_BYTE).decode()


@functools.cache
def delta_head(index: int, delta_type: str) -> bytes:
    """The bytes of a streamed delta up to its piece, so that each delta costs one `orjson.dumps`."""
    field = DELTA_FIELDS[delta_type]
    head = f'{{"type":"content_block_delta","index":{index},"delta":{{"type":"{delta_type}","{field}":'
    return b"event: content_block_delta\ndata: " + head.encode()


def _event(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


# How a plain text block opens: the start of most blocks, so its event is encoded once per index.
_TEXT_START = {"type": "text", "text": ""}


def block_start_event(index: int, block: dict[str, Any]) -> bytes:
    return _text_start_event(index) if block == _TEXT_START else _block_start_event(index, block)


@functools.cache
def _text_start_event(index: int) -> bytes:
    return _block_start_event(index, _TEXT_START)


def _block_start_event(index: int, block: dict[str, Any]) -> bytes:
    payload = {"type": "content_block_start", "index": index, "content_block": block}
    return _event(b"content_block_start", payload)


def whole_delta_event(index: int, delta: dict[str, Any]) -> bytes:
    return _event(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


@functools.cache
def block_stop_event(index: int) -> bytes:
    return _event(b"content_block_stop", {"type": "content_block_stop", "index": index})


def message_object(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    stop_sequence: str | None,
    usage: dict[str, Any],
    stop_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Message; with empty content and no stop reason, the form that opens a stream."""
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }
    if stop_details is not None:  # only refusals have any, and older API versions never send the field
        message["stop_details"] = stop_details
    return message


def message_start_event(message_id: str, model: str, usage: dict[str, Any]) -> bytes:
    message = message_object(message_id, model, [], None, None, usage)
    return _event(b"message_start", {"type": "message_start", "message": message})


def message_delta_event(
    stop_reason: str, stop_sequence: str | None, stop_details: dict[str, Any] | None, usage: dict[str, Any]
) -> bytes:
    delta: dict[str, Any] = {"stop_reason": stop_reason, "stop_sequence": stop_sequence}
    if stop_details is not None:
        delta["stop_details"] = stop_details
    return _event(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage})


def error_body(status: int, message: str, request_id: str) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": ERROR_TYPES[status], "message": message},
            "request_id": request_id,
        }
    )


def retry_after(seconds: float) -> str:
    """Whole seconds, rounded up: the service sends an integer and a client must not retry early."""
    return str(math.ceil(seconds))


def rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))
