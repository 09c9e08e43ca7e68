"""Deterministic replies: the same request body always gets the same text, so tests can predict output.

Pure functions only; the server and `expected_reply` share them, which is what keeps the two in step.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import orjson

from .config import DEFAULT_REPLY_TOKENS
from .directives import parse_directives

_VOCABULARY = (
    "the", "a", "an", "this", "that", "these", "those", "some", "every", "each", "many", "most",
    "time", "people", "way", "day", "world", "life", "hand", "part", "place", "case", "week", "system",
    "program", "question", "work", "number", "point", "home", "water", "room", "fact", "idea", "result",
    "answer", "reason", "example", "problem", "method", "process", "model", "data", "value", "level",
    "report", "change", "story", "study", "book", "plan", "test", "rule", "line", "table", "list",
    "is", "was", "are", "were", "has", "had", "can", "will", "would", "should", "could", "may", "might",
    "make", "take", "give", "find", "tell", "show", "keep", "help", "start", "turn", "move", "bring",
    "write", "read", "learn", "build", "follow", "explain", "consider", "describe", "suggest", "remain",
    "good", "new", "first", "last", "long", "great", "little", "other", "old", "right", "large", "small",
    "simple", "clear", "early", "careful", "useful", "common", "important", "different", "possible",
    "in", "of", "to", "for", "with", "on", "at", "from", "by", "about", "into", "over", "after", "under",
    "and", "but", "or", "so", "because", "while", "when", "where", "then", "also", "often", "usually",
    "very", "quite", "still", "just", "only", "again", "perhaps", "together", "already", "almost",
    "we", "you", "they", "it", "he", "she", "I", "one", "two", "three", "several", "both", "more",
)  # fmt: skip


@dataclass(frozen=True)
class Reply:
    tokens: tuple[str, ...]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.tokens)


def request_key(body: dict[str, Any]) -> str:
    """Identify a request across retries: the same prompt resent is the same key, `stream` aside."""
    canonical = {name: value for name, value in body.items() if name != "stream"}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def build_reply(
    body: dict[str, Any],
    key: str,
    reply_tokens: tuple[int, int],
    directive_tokens: int | None,
) -> Reply:
    rng = random.Random(int(key, 16))
    length = directive_tokens if directive_tokens is not None else rng.randint(*reply_tokens)
    max_tokens = body.get("max_tokens")
    limit = length if max_tokens is None else min(length, max_tokens)
    tokens = _words(rng, limit, length)
    stop_reason = "max_tokens" if limit < length else "end_turn"
    stop_sequence = None
    cut = _first_stop(tokens, body.get("stop_sequences"))
    if cut is not None:
        tokens, stop_sequence = cut
        stop_reason = "stop_sequence"
    return Reply(tuple(tokens), stop_reason, stop_sequence, estimate_input_tokens(body))


def _words(rng: random.Random, count: int, length: int) -> list[str]:
    """Sentence-shaped text: capitalised starts, a comma now and then, a full stop at the end of each."""
    tokens: list[str] = []
    sentence_left = rng.randint(6, 18)
    capital = True
    for i, word in enumerate(rng.choices(_VOCABULARY, k=count)):
        if capital:
            word = word[0].upper() + word[1:]
        sentence_left -= 1
        if sentence_left <= 0 or i == length - 1:
            word += "."
            sentence_left = rng.randint(6, 18)
            capital = True
        else:
            if rng.random() < 0.07:
                word += ","
            capital = False
        tokens.append(word if i == 0 else " " + word)
    return tokens


def _first_stop(tokens: list[str], stop_sequences: Any) -> tuple[list[str], str] | None:
    if not stop_sequences:
        return None
    text = "".join(tokens)
    best: tuple[int, str] | None = None
    for sequence in stop_sequences:
        if not sequence:
            continue
        at = text.find(sequence)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, sequence)
    if best is None:
        return None
    at, sequence = best
    kept: list[str] = []
    end = 0
    for token in tokens:
        if end + len(token) <= at:
            kept.append(token)
            end += len(token)
            continue
        if at > end:
            kept.append(token[: at - end])
        break
    return kept, sequence


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """About four characters a token, plus the few tokens of framing each message costs."""
    total = 0
    system = body.get("system")
    if system:
        total += 3 + _content_tokens(system)
    for message in body.get("messages") or ():
        total += 4
        if isinstance(message, dict):
            total += _content_tokens(message.get("content"))
    tools = body.get("tools")
    if tools:
        total += _chars_to_tokens(len(orjson.dumps(tools)))
    return total


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _chars_to_tokens(len(content))
    if not isinstance(content, list):
        return 0
    total = 0
    for block in content:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            total += _chars_to_tokens(len(block["text"]))
        else:
            total += _chars_to_tokens(len(orjson.dumps(block)))
    return total


def _chars_to_tokens(chars: int) -> int:
    return -(-chars // 4)


def expected_reply(
    body: dict[str, Any], *, reply_tokens: tuple[int, int] = DEFAULT_REPLY_TOKENS
) -> dict[str, Any]:
    """What the simulator answers for `body` when no fault strikes.

    Pass `reply_tokens` when the simulator was started with a non-default range.
    """
    reply = build_reply(body, request_key(body), reply_tokens, parse_directives(body).tokens)
    return {
        "text": reply.text,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "model": body["model"],
    }
