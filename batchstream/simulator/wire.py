"""Bytes on the wire, shaped like the real Messages API so the SDK cannot tell the difference.

Constant events are encoded once at import; per-event work is one `orjson.dumps` of the token text.
"""

from __future__ import annotations

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

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
JSON_CONTENT_TYPE = "application/json"

CONTENT_BLOCK_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
DELTA_HEAD = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":'
)
DELTA_TAIL = b"}}\n\n"
CONTENT_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
ERROR_EVENT = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ids = random.Random()


def new_id(prefix: str) -> str:
    """`prefix` + "01" + 24 base62 characters, the shape of the service's message and request ids."""
    return prefix + "01" + "".join(_ids.choices(_BASE62, k=24))


def delta_event(token: str) -> bytes:
    return DELTA_HEAD + orjson.dumps(token) + DELTA_TAIL


def _event(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message_object(
    message_id: str,
    model: str,
    text: str | None,
    stop_reason: str | None,
    stop_sequence: str | None,
    usage_: dict[str, Any],
) -> dict[str, Any]:
    """A Message; `text=None` gives the empty-content form that opens a stream."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if text is None else [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_,
    }


def message_start_event(message_id: str, model: str, input_tokens: int) -> bytes:
    message = message_object(message_id, model, None, None, None, usage(input_tokens, 1))
    return _event(b"message_start", {"type": "message_start", "message": message})


def message_delta_event(stop_reason: str, stop_sequence: str | None, output_tokens: int) -> bytes:
    payload = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": {"output_tokens": output_tokens},
    }
    return _event(b"message_delta", payload)


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
