"""Tool inputs: a value that fits the tool's `input_schema`, and the JSON text cut up as the API streams it.

Strings mix in quotes, backslashes, control characters and non-ASCII text, so that fragment boundaries fall
inside escapes and multi-byte characters, where a careless client would break.
"""

from __future__ import annotations

import json
import random
from typing import Any

from .words import VOCABULARY

# Characters JSON must escape, or that are more than one UTF-8 byte, or both.
_AWKWARD = ('"quoted"', "back\\slash", "line\nbreak", "tab\there", "café", "naïve", "✓", "🙂", "\u2028")
_MAX_DEPTH = 6
_MAX_FRAGMENT_CHARS = 24


def tool_input(schema: Any, rng: random.Random, min_bytes: int | None = None) -> dict[str, Any]:
    """A deterministic value for `schema`; with `min_bytes`, grown until its JSON is at least that long."""
    value = _value(schema, rng, 0)
    result = value if isinstance(value, dict) else {}
    if min_bytes is not None:
        _pad(result, schema, rng, min_bytes)
    return result


def input_json(value: dict[str, Any]) -> str:
    """The JSON text the model writes, spaced like the API's (`{"location": "San Francisco, CA"}`)."""
    return json.dumps(value, ensure_ascii=False)


def fragments(text: str, rng: random.Random) -> tuple[str, ...]:
    """The `partial_json` values: an empty one first, as the API sends, then pieces of 1 to 24 characters."""
    pieces = [""]
    at = 0
    while at < len(text):
        step = rng.randint(1, _MAX_FRAGMENT_CHARS)
        pieces.append(text[at : at + step])
        at += step
    return tuple(pieces)


def _value(schema: Any, rng: random.Random, depth: int) -> Any:
    if not isinstance(schema, dict):
        return _phrase(rng)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return _value(schema[combinator][0], rng, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((name for name in kind if name != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        if depth >= _MAX_DEPTH:
            return {}
        return {name: _value(sub, rng, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), rng.randint(1, 3))
        if depth >= _MAX_DEPTH:
            return []
        return [_value(schema.get("items"), rng, depth + 1) for _ in range(count)]
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 10_000)))
    if kind == "number":
        return round(rng.uniform(float(schema.get("minimum", 0)), float(schema.get("maximum", 1000))), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _phrase(rng)


def _phrase(rng: random.Random, count: int | None = None) -> str:
    picked = rng.choices(VOCABULARY, k=count if count is not None else rng.randint(1, 6))
    if rng.random() < 0.5:
        picked.insert(rng.randrange(len(picked) + 1), rng.choice(_AWKWARD))
    return " ".join(picked)


def _pad(value: dict[str, Any], schema: Any, rng: random.Random, min_bytes: int) -> None:
    """Grow the first string property (or a `notes` one when the schema has none) to reach `min_bytes`."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    key = next(
        (
            name
            for name, sub in (properties or {}).items()
            if isinstance(sub, dict) and sub.get("type") == "string" and "enum" not in sub
        ),
        "notes",
    )
    parts = [value[key]] if isinstance(value.get(key), str) else []
    size = len(input_json(value).encode())
    while size < min_bytes:
        part = _phrase(rng, 12)
        parts.append(part)
        size += len(part.encode()) + 1
    value[key] = " ".join(parts)
