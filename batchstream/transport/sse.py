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

    __slots__ = ("_buf", "_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False  # the last chunk ended in CR: a LF opening the next one is the rest of a CRLF

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        if b"\r" in chunk or self._cr:
            chunk = self._normalise_newlines(chunk)
        buf = self._buf + chunk if self._buf else chunk
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

    def _normalise_newlines(self, chunk: bytes) -> bytes:
        # CRLF, CR and LF all end a line. A CR ending the chunk counts at once (in a bare-CR stream it may be
        # the last byte of all): a LF opening the next chunk is then dropped, as the second half of a CRLF.
        if not chunk:
            return chunk
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._cr = chunk[-1:] == b"\r"
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


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
