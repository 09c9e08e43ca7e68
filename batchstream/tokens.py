"""Local guesses at a request's input tokens, for when the API's count is not to hand.

`estimate_input_tokens` errs high (three bytes of JSON per token, where English runs nearer four), because
it decides how much of a budget a request may take before it is sent. `InputCalibration` learns the real
ratio from replies, so pacing under the input-tokens limit reserves what requests really count.
"""

from __future__ import annotations

import math
from typing import Any

import orjson


def prompt_bytes(params: dict[str, Any]) -> int:
    """The size of what a request's input tokens are made of: its messages, system prompt and tools."""
    size = len(orjson.dumps(params.get("messages"))) + len(orjson.dumps(params.get("system")))
    if "tools" in params:
        size += len(orjson.dumps(params["tools"]))
    return size


def estimate_input_tokens(params: dict[str, Any]) -> int:
    return _prior_estimate(prompt_bytes(params))


def _prior_estimate(size: int) -> int:
    return size // 3 + 8


# The usage fields that together are the whole prompt.
_PROMPT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class InputCalibration:
    """Input tokens per byte of prompt, learned per model from replies, for pacing under the input-tokens
    limit.

    Every reply reports how many tokens its prompt was (`input_tokens` plus the cache's writes and reads)
    for a prompt whose size we know; what a request expects to read from the cache comes off per request
    (`run_attempts`), as cache reads do not count toward the limit. Until a model has replies, a request
    is estimated as `estimate_input_tokens` does (three bytes a token: high for English, so the first
    requests stay under the limit); after, at the ratio seen so far plus a margin that shrinks as replies
    come in (30% after one, 10% after 9, 5% after 36, never under 3%). The ratio is of sums, not a mean of
    ratios, so a few long prompts weigh as what they are. Only the limiter uses it: a budget (--max-cost)
    and `estimate` keep the fixed, cautious estimate.
    """

    __slots__ = ("_seen",)

    _MARGIN = 0.3
    _MIN_MARGIN = 0.03

    def __init__(self) -> None:
        self._seen: dict[str, list[int]] = {}  # model -> [replies, prompt bytes, tokens counted]

    def estimate(self, model: str, size: int) -> int:
        seen = self._seen.get(model)
        if seen is None:
            return _prior_estimate(size)
        replies, total_bytes, total_tokens = seen
        margin = max(self._MIN_MARGIN, self._MARGIN / math.sqrt(replies))
        return math.ceil(size * total_tokens / max(1, total_bytes) * (1 + margin))

    def observe(self, model: str, size: int, usage: dict[str, Any]) -> None:
        seen = self._seen.setdefault(model, [0, 0, 0])
        seen[0] += 1
        seen[1] += size
        seen[2] += sum(int(usage.get(field) or 0) for field in _PROMPT_FIELDS)
