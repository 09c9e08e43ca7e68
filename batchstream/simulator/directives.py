"""`[[sim ...]]` directives: a prompt scripts its own faults and reply shape, so tests need no special config.

Only the last user message is read, as that is the part of a conversation a test writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .config import FAULT_KINDS
from .prompt import documents
from .transcripts import transcript_names
from .wire import ERROR_TYPES

_DIRECTIVE = re.compile(r"\[\[sim\b([^\]]*)\]\]")

# Items that are bare words, items that take a count, and items that take one of a set of names.
_FLAGS = frozenset({"citations", "redacted_thinking", "compaction", "unknown_event", "cut_tool"})
# Items that take any name (a model id).
_NAMES = frozenset({"fallback"})
_COUNTS = frozenset({"tokens", "tool_input_bytes", "cache_read"})
# Stop reasons a reply cannot reach on its own (max_tokens, stop_sequence and tool_use follow the request).
_STOPS = ("end_turn", "pause_turn", "refusal", "model_context_window_exceeded")
# Events a reply's stream carries, any of which `garble=` can break.
STREAM_EVENTS = (
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
)
_CHOICES: dict[str, Callable[[], Collection[str]]] = {
    "stop": lambda: _STOPS,
    "garble": lambda: STREAM_EVENTS,
    "service_tier": lambda: ("standard", "priority", "batch"),
    "transcript": transcript_names,
}


class DirectiveError(ValueError):
    """A malformed directive; answered with a 400 so the mistake surfaces in the test that made it."""


@dataclass(frozen=True)
class Directives:
    status: int | None = None
    fail: tuple[str, ...] = ()
    tokens: int | None = None
    stop: str | None = None
    citations: bool = False
    redacted_thinking: bool = False
    tool_input_bytes: int | None = None
    cache_read: int = 0
    service_tier: str | None = None
    transcript: str | None = None
    garble: str | None = None  # the first event of this type goes out as JSON cut short, on every attempt
    compaction: bool = False  # a compaction block first, its content in one compaction_delta
    fallback: str | None = None  # a server-side fallback to this model, which then serves the reply
    unknown_event: bool = False  # an event of a type no client knows, before message_start and mid-stream
    cut_tool: bool = False  # the tool call cut by max_tokens partway through its input (no block stop)


NO_DIRECTIVES = Directives()


def last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def prompt_text(body: dict[str, Any]) -> str:
    """The last user message as the model would read it: the simulator's own directives taken out."""
    return _DIRECTIVE.sub("", last_user_text(body)).strip()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block["text"]
            for block in content
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        )
    return ""


def parse_directives(body: dict[str, Any]) -> Directives:
    text = last_user_text(body)
    if "[[sim" not in text:
        return NO_DIRECTIVES
    found: dict[str, Any] = {}
    for match in _DIRECTIVE.finditer(text):
        for item in match.group(1).split():
            name, sep, value = item.partition("=")
            if name in _FLAGS and not sep:
                found[name] = True
            elif not sep:
                raise DirectiveError(f"[[sim]] directive item {item!r} is not NAME=VALUE")
            elif name in _COUNTS:
                found[name] = _count(name, value)
            elif name in _NAMES:
                if not value:
                    raise DirectiveError(f"[[sim]] {name} needs a value")
                found[name] = value
            elif name in _CHOICES:
                found[name] = _choice(name, value, _CHOICES[name]())
            elif name == "status":
                found[name] = _int(name, value)
                if found[name] not in ERROR_TYPES:
                    raise DirectiveError(f"[[sim]] status={value} is not an API error status")
            elif name == "fail":
                found[name] = tuple(kind for kind in value.split(",") if kind)
                bad = [kind for kind in found[name] if kind not in FAULT_KINDS]
                if bad:
                    raise DirectiveError(f"[[sim]] fail kinds {bad} not in {', '.join(FAULT_KINDS)}")
            else:
                known = ", ".join(sorted({"status", "fail", *_FLAGS, *_COUNTS, *_NAMES, *_CHOICES}))
                raise DirectiveError(f"[[sim]] unknown directive {name!r} (use {known})")
    if found.get("citations") and not documents(body):
        raise DirectiveError("[[sim]] citations needs a document block in the messages to cite")
    if found.get("cut_tool") and not any(
        isinstance(tool, dict) and "input_schema" in tool for tool in body.get("tools") or ()
    ):
        raise DirectiveError("[[sim]] cut_tool needs a client tool in the request to call")
    return Directives(**found)


def _count(name: str, value: str) -> int:
    number = _int(name, value)
    if number < 0:
        raise DirectiveError(f"[[sim]] {name} must be >= 0")
    return number


def _choice(name: str, value: str, allowed: Collection[str]) -> str:
    if value not in allowed:
        raise DirectiveError(f"[[sim]] {name}={value!r} is not one of {', '.join(sorted(allowed))}")
    return value


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DirectiveError(f"[[sim]] {name}={value!r} is not an integer") from None
