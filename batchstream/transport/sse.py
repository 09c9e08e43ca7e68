"""A minimal Server-Sent Events decoder for the Messages API stream.

This is the hot path: every streamed token passes through `feed`. It works on bytes, splits on blank
lines and hands each event's `data` to orjson, skipping the SDK's per-event pydantic models, which cost
several times more CPU than the JSON parse itself.
"""

from __future__ import annotations

from typing import Any

import orjson

_loads = orjson.loads


class SSEDecoder:
    """Turns arbitrary byte chunks into parsed event payloads (dicts), in order.

    Events without a `data` field (comments, keep-alives) are dropped; the event's type is taken from its
    JSON `type`, as the SDK does, so the `event:` line is not needed.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = self._normalise_newlines(buf)
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        events: list[dict[str, Any]] = []
        for block in blocks:
            data = _event_data(block)
            if data is not None:
                events.append(_loads(data))
        return events

    def pending(self) -> bool:
        """Whether bytes of an unfinished event are buffered (a stream that ends here was cut)."""
        return bool(self._buf.strip())

    def _normalise_newlines(self, buf: bytes) -> bytes:
        # A CR at the very end may be the first half of a CRLF split across chunks: keep it for later.
        tail = b""
        if buf.endswith(b"\r"):
            buf, tail = buf[:-1], b"\r"
        buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return buf + tail


def _event_data(block: bytes) -> bytes | None:
    # The common shape is "event: NAME\ndata: {...}": one data line, last. Anything else takes the
    # general route (several data lines are joined with newlines, as the SSE spec says).
    start = block.find(b"data:")
    if start == -1:
        return None
    if (start == 0 or block[start - 1] == 10) and block.find(b"\n", start) == -1:
        return block[start + 5 :]
    lines = [line[5:] for line in block.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)
