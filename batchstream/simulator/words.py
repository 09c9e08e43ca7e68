"""Sentence-shaped filler text from a seeded PRNG: every reply, thought, query and tool argument uses it."""

from __future__ import annotations

import random
from typing import Any

VOCABULARY = (
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


def words(rng: random.Random, count: int, length: int) -> list[str]:
    """Sentence-shaped text: capitalised starts, a comma now and then, a full stop at the end of each."""
    tokens: list[str] = []
    sentence_left = rng.randint(6, 18)
    capital = True
    for i, word in enumerate(rng.choices(VOCABULARY, k=count)):
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


def first_stop(tokens: list[str], stop_sequences: Any) -> tuple[list[str], str] | None:
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
