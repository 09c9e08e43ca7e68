"""Request-body checks worded like the service's 400s ("FIELD: problem"), so clients meet real rejections.

Each check returns the first problem found, or None. What a body may hold depends on the request's
`anthropic-version` header and on its model, as on the service:

- 2023-06-01 takes temperature, top_p and top_k, except on Opus 4.7 and 4.8 and every generation-5 model,
  which answer "`temperature` is deprecated for this model." (a temperature of exactly 1, the default,
  still passes there; top_p and top_k do not, at any value);
- 2026-10-21 (what SDK 2.x sends) and later refuse all three as unknown fields, at any value
  ("temperature: Extra inputs are not permitted"), and also document blocks in assistant messages and
  non-empty citations on text blocks in user messages.
"""

from __future__ import annotations

from typing import Any

from ..apifields import (
    COUNT_TOKENS_FIELDS,
    MESSAGES_FIELDS,
    NO_SAMPLING_MODEL,
    SAMPLING_FIELDS,
    SAMPLING_REMOVED_IN,
)
from ..cacherules import MAX_BREAKPOINTS
from .prompt import count_breakpoints

# The service's list is the client's list (`apifields`), plus the `stream` flag the client sets itself.
_MESSAGES_FIELDS = MESSAGES_FIELDS | {"stream"}
_MESSAGES_FIELDS_2026 = _MESSAGES_FIELDS - set(SAMPLING_FIELDS)

_ROLES = ("user", "assistant")

# The wording of these two is ours: the service's exact text for them is not known to us.
_ASSISTANT_DOCUMENT = "{where}.type: document blocks are not permitted in assistant messages"
_USER_CITATIONS = "{where}.citations: citations are not permitted on text blocks in user messages"
_PREWARM = "max_tokens: 0 (prompt cache pre-warming) cannot be combined with {name}"
_TOO_MANY_BREAKPOINTS = "A maximum of {limit} blocks with cache_control may be provided. Found {count}."


def validate_messages_body(body: Any, api_version: str = SAMPLING_REMOVED_IN) -> str | None:
    legacy = api_version < SAMPLING_REMOVED_IN
    allowed = _MESSAGES_FIELDS if legacy else _MESSAGES_FIELDS_2026
    required = ("model", "max_tokens", "messages")
    return (
        _validate(body, allowed, required, legacy)
        or _check_sampling(body, legacy)
        or _check_prewarm(body)
        or _check_breakpoints(body)
    )


def validate_count_tokens_body(body: Any, api_version: str = SAMPLING_REMOVED_IN) -> str | None:
    return _validate(body, COUNT_TOKENS_FIELDS, ("model", "messages"), api_version < SAMPLING_REMOVED_IN)


def _validate(body: Any, allowed: frozenset[str], required: tuple[str, ...], legacy: bool) -> str | None:
    if not isinstance(body, dict):
        return "Input should be a valid dictionary or object to extract fields from"
    for name in required:
        if name not in body:
            return f"{name}: Field required"
    for name in body:
        if name not in allowed:
            return f"{name}: Extra inputs are not permitted"
    model = body["model"]
    if not isinstance(model, str):
        return "model: Input should be a valid string"
    if not model:
        return "model: String should have at least 1 character"
    return _check_messages(body["messages"], legacy) or _check_system(body.get("system"))


def _check_messages(messages: Any, legacy: bool) -> str | None:
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            return f"{where}: Input should be a valid dictionary or object to extract fields from"
        if "role" not in message:
            return f"{where}.role: Field required"
        if message["role"] not in _ROLES:
            return f"{where}.role: Input should be 'user' or 'assistant'"
        if "content" not in message:
            return f"{where}.content: Field required"
        problem = _check_content(message["content"], f"{where}.content")
        if problem:
            return problem
        if not legacy:
            problem = _check_content_2026(message["content"], f"{where}.content", message["role"])
            if problem:
                return problem
    return None


def _check_content_2026(content: Any, where: str, role: str) -> str | None:
    if not isinstance(content, list):
        return None
    for i, block in enumerate(content):
        if role == "assistant" and block["type"] == "document":
            return _ASSISTANT_DOCUMENT.format(where=f"{where}.{i}")
        if role == "user" and block["type"] == "text" and block.get("citations"):
            return _USER_CITATIONS.format(where=f"{where}.{i}")
    return None


def _check_content(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a valid string or a valid list"
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            return f"{where}.{i}: Input should be a valid dictionary or object to extract fields from"
        if not isinstance(block.get("type"), str):
            return f"{where}.{i}.type: Field required"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"{where}.{i}.text: Input should be a valid string"
    return None


def _check_system(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return None
    return _check_content(system, "system")


def _check_sampling(body: dict[str, Any], legacy: bool) -> str | None:
    max_tokens = body["max_tokens"]
    if not _is_int(max_tokens):
        return "max_tokens: Input should be a valid integer"
    if max_tokens < 0:
        return "max_tokens: Input should be greater than or equal to 0"
    for name in ("temperature", "top_p"):
        if name in body:
            value = body[name]
            if not isinstance(value, int | float) or isinstance(value, bool):
                return f"{name}: Input should be a valid number"
            if value < 0:
                return f"{name}: Input should be greater than or equal to 0"
            if value > 1:
                return f"{name}: Input should be less than or equal to 1"
    if "top_k" in body and not _is_int(body["top_k"]):
        return "top_k: Input should be a valid integer"
    if legacy and NO_SAMPLING_MODEL.fullmatch(body["model"]):
        for name in SAMPLING_FIELDS:
            if name in body and not (name == "temperature" and body[name] == 1):
                return f"`{name}` is deprecated for this model."
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    return _check_stop_sequences(body.get("stop_sequences"))


def _check_prewarm(body: dict[str, Any]) -> str | None:
    """`max_tokens: 0` only fills the prompt cache (see `cacherules`); it cannot stream, think, force a tool
    call or shape the output, none of which it would produce."""
    if body["max_tokens"] != 0:
        return None
    thinking = body.get("thinking")
    choice = body.get("tool_choice")
    output_config = body.get("output_config")
    refused = (
        ("stream", body.get("stream") is True),
        ("thinking", isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")),
        ("tool_choice", isinstance(choice, dict) and choice.get("type") in ("any", "tool")),
        ("output_format", body.get("output_format") is not None),
        ("output_config.format", isinstance(output_config, dict) and "format" in output_config),
    )
    for name, present in refused:
        if present:
            return _PREWARM.format(name=name)
    return None


def _check_breakpoints(body: dict[str, Any]) -> str | None:
    count = count_breakpoints(body)
    if count > MAX_BREAKPOINTS:
        return _TOO_MANY_BREAKPOINTS.format(limit=MAX_BREAKPOINTS, count=count)
    return None


def _check_stop_sequences(stop_sequences: Any) -> str | None:
    if stop_sequences is None:
        return None
    if not isinstance(stop_sequences, list):
        return "stop_sequences: Input should be a valid list"
    for i, sequence in enumerate(stop_sequences):
        if not isinstance(sequence, str):
            return f"stop_sequences.{i}: Input should be a valid string"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
