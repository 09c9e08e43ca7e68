"""Is accumulating a tool call's `input_json_delta` fragments linear? Measured in-process.

One synthetic stream per size: message_start, a tool_use content_block_start, N `input_json_delta`
fragments (a JSON document of about 8*N bytes cut into N pieces), content_block_stop, message_delta,
message_stop. The same events go through:

- batchstream: `batchstream.transport.accumulate.MessageAccumulator.feed` on event dicts (what the
  streaming sender feeds it after orjson), each delta built just before it is fed;
- the SDK: `anthropic.lib.streaming._messages.accumulate_event` on event models built beforehand (what
  `messages.stream()` does per event, model construction excluded, as the SDK builds models before it).

Time per fragment that stays flat as N grows means linear; growing with N means quadratic. Both results
are checked against the original document. Best of 5 runs, except the SDK at sizes above 10k (one run).
Prints one JSON object on stdout.

Run: python -m bench.accumulators [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import orjson


def synthetic_events(fragments: int, fragment_bytes: int = 8) -> tuple[list[dict[str, Any]], Any]:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa " * (
        fragments * fragment_bytes // 50 + 2
    )
    target = fragments * fragment_bytes
    document = {"path": "/srv/notes/report.txt", "mode": "overwrite", "content": ""}
    document["content"] = words[: max(0, target - len(orjson.dumps(document)))]
    raw = orjson.dumps(document).decode()
    size = -(-len(raw) // fragments)
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01bench",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-5-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_01bench", "name": "write_file", "input": {}},
        },
    ]
    events += [
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }
        for piece in pieces
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": len(pieces)},
        },
        {"type": "message_stop"},
    ]
    return events, document


def time_batchstream(events: list[dict[str, Any]], expected: Any) -> float:
    """Feeds each delta as a dict built just before it is fed, around a fragment string sliced just then,
    as in production where each event is fresh from orjson. Replaying 100k prepared events instead would
    mostly measure cache misses on memory that a real stream never revisits. Building the dict and the
    string is inside the timing, so this errs against batchstream."""
    from batchstream.transport.accumulate import MessageAccumulator

    head, tail = events[:2], events[-3:]
    deltas = events[2:-3]
    raw = "".join(event["delta"]["partial_json"] for event in deltas)
    size = len(deltas[0]["delta"]["partial_json"])
    accumulator = MessageAccumulator()
    feed = accumulator.feed
    started = time.perf_counter()
    for event in head:
        feed(event)
    for at in range(0, len(raw), size):
        feed(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": raw[at : at + size]},
            }
        )
    for event in tail:
        feed(event)
    elapsed = time.perf_counter() - started
    if accumulator.message()["content"][0]["input"] != expected:
        raise AssertionError("batchstream accumulated a different tool input")
    return elapsed


def time_sdk(events: list[dict[str, Any]], expected: Any) -> float:
    from anthropic._models import construct_type_unchecked
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent

    models = [construct_type_unchecked(type_=RawMessageStreamEvent, value=event) for event in events]
    snapshot = None
    buffers: dict[int, bytes] = {}
    started = time.perf_counter()
    for model in models:
        snapshot = accumulate_event(event=model, current_snapshot=snapshot, json_bufs=buffers)
    elapsed = time.perf_counter() - started
    if snapshot is None or snapshot.content[0].input != expected:
        raise AssertionError("the SDK accumulated a different tool input")
    return elapsed


def _timed(timer: Any, events: list[dict[str, Any]], document: Any) -> float:
    """One timing with every object built so far frozen out of the garbage collector: otherwise full
    collections walk the 100k prepared events, a cost of this harness that production does not have."""
    gc.collect()
    gc.freeze()
    try:
        return timer(events, document)
    finally:
        gc.unfreeze()


def measure(sizes: list[int], repeats: int = 5) -> dict[str, Any]:
    # Warm both paths (lazy imports such as jiter's, first-use caches) before timing anything.
    warm_events, warm_doc = synthetic_events(200)
    time_batchstream(warm_events, warm_doc)
    time_sdk(warm_events, warm_doc)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        events, document = synthetic_events(size)
        fragments = len(events) - 5
        for name, timer in (("batchstream", time_batchstream), ("sdk", time_sdk)):
            runs = repeats if size <= 10_000 or name == "batchstream" else 1
            best = min(_timed(timer, events, document) for _ in range(runs))
            rows.append(
                {
                    "accumulator": name,
                    "fragments": fragments,
                    "json_bytes": len(orjson.dumps(document)),
                    "seconds": best,
                    "us_per_fragment": 1e6 * best / fragments,
                }
            )
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.accumulators")
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    print(orjson.dumps(measure(sizes)).decode())


if __name__ == "__main__":
    main()
