"""A reply as the SSE events of its stream, in order, ending early where a mid-stream fault strikes.

The server sends the one sequence either paced or in a burst, so the two differ in timing only.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from .faults import Fault
from .replies import Reply
from .wire import (
    DELTA_TAIL,
    ERROR_EVENT,
    MESSAGE_STOP,
    PING,
    UNKNOWN_EVENT,
    block_start_event,
    block_stop_event,
    delta_head,
    message_delta_event,
    message_start_event,
    whole_delta_event,
)

# An event's bytes, and for a streamed piece its place among its block's pieces (pacing starts over with
# every block); None for any other event.
Event = tuple[bytes, int | None]


def garbled(events: Iterator[Event], kind: str) -> Iterator[Event]:
    """`events` with the first one of type `kind` cut off inside its JSON: a server's bug, on the wire."""
    head = b"event: " + kind.encode() + b"\n"
    for event, nth in events:
        if head is not None and event.startswith(head):
            event = head + b'data: {"type": "' + kind.encode() + b'", "index": \n\n'
            head = None
        yield event, nth


def stream_events(reply: Reply, message_id: str, model: str, fault: Fault | None) -> Iterator[Event]:
    """The events of `reply`'s stream, in order.

    A fault (always a mid-stream one here) strikes after `fault.cut` pieces, counted across all blocks: the
    stream then stops short, with an `error` event last for an `error_event` fault.
    """
    if reply.unknown_event:  # the SDK passes such events through, and folds none into the message
        yield UNKNOWN_EVENT, None
    yield message_start_event(message_id, model, reply.start_usage), None
    left = -1 if fault is None else fault.cut(reply.output_tokens)
    dumps = orjson.dumps
    for index, block in enumerate(reply.blocks):
        yield block_start_event(index, block.start), None
        if index == 0:
            yield PING, None
            if reply.unknown_event:
                yield UNKNOWN_EVENT, None
        pieces = block.pieces if left < 0 else block.pieces[:left]
        head = delta_head(index, block.delta_type)
        for nth, piece in enumerate(pieces):
            yield head + dumps(piece) + DELTA_TAIL, nth
        if left >= 0:
            left -= len(pieces)
            if left == 0:
                break
        for delta in block.after:
            yield whole_delta_event(index, delta), None
        if not block.stops:  # cut by max_tokens: the reply ends here, with no content_block_stop
            break
        yield block_stop_event(index), None
    if fault is None:
        usage = reply.delta_usage
        yield message_delta_event(reply.stop_reason, reply.stop_sequence, reply.stop_details, usage), None
        yield MESSAGE_STOP, None
    elif fault.kind == "error_event":
        yield ERROR_EVENT, None
