"""`[[sim ...]]` directives: lets a single prompt script its own failures, so tests need no special config.

Only the last user message is read, as that is the part of a conversation a test writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .config import FAULT_KINDS
from .wire import ERROR_TYPES

_DIRECTIVE = re.compile(r"\[\[sim\b([^\]]*)\]\]")


class DirectiveError(ValueError):
    """A malformed directive; answered with a 400 so the mistake surfaces in the test that made it."""


@dataclass(frozen=True)
class Directives:
    status: int | None = None
    fail: tuple[str, ...] = ()
    tokens: int | None = None


NO_DIRECTIVES = Directives()


def last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


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
    status: int | None = None
    fail: tuple[str, ...] = ()
    tokens: int | None = None
    for match in _DIRECTIVE.finditer(text):
        for item in match.group(1).split():
            name, sep, value = item.partition("=")
            if not sep:
                raise DirectiveError(f"[[sim]] directive item {item!r} is not NAME=VALUE")
            if name == "status":
                status = _int(name, value)
                if status not in ERROR_TYPES:
                    raise DirectiveError(f"[[sim]] status={value} is not an API error status")
            elif name == "fail":
                fail = tuple(kind for kind in value.split(",") if kind)
                bad = [kind for kind in fail if kind not in FAULT_KINDS]
                if bad:
                    raise DirectiveError(f"[[sim]] fail kinds {bad} not in {', '.join(FAULT_KINDS)}")
            elif name == "tokens":
                tokens = _int(name, value)
                if tokens < 0:
                    raise DirectiveError("[[sim]] tokens must be >= 0")
            else:
                raise DirectiveError(f"[[sim]] unknown directive {name!r} (use status, fail or tokens)")
    return Directives(status=status, fail=fail, tokens=tokens)


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DirectiveError(f"[[sim]] {name}={value!r} is not an integer") from None
