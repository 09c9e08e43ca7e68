"""Recorded streams, replayed byte for byte by `[[sim transcript=NAME]]`.

`transcripts/NAME.sse` holds the stream as the API sends it (event names, pings, its JSON spacing);
`transcripts/NAME.json` holds what it must assemble into: the final message, or for a stream that breaks
off with an `error` event, that error. Generated replies can only be as faithful as the simulator's idea of
the API; these pin the API's own examples.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

TRANSCRIPT_DIR = Path(__file__).with_name("transcripts")

_EVENT_END = re.compile(rb"(?<=\n\n)")


@dataclass(frozen=True)
class Transcript:
    events: tuple[bytes, ...]  # each a whole event with its blank line, written separately as the API does
    outcome: dict[str, Any]  # the final message, or {"type": "error", "error": {...}}

    @property
    def complete(self) -> bool:
        return self.outcome.get("type") == "message"


@functools.cache
def transcript_names() -> frozenset[str]:
    return frozenset(path.stem for path in TRANSCRIPT_DIR.glob("*.sse"))


@functools.cache
def load_transcript(name: str) -> Transcript:
    raw = (TRANSCRIPT_DIR / f"{name}.sse").read_bytes()
    events = tuple(event for event in _EVENT_END.split(raw) if event)
    return Transcript(events, orjson.loads((TRANSCRIPT_DIR / f"{name}.json").read_bytes()))
