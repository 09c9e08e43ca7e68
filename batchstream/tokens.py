"""A local guess at a request's input tokens, for when the API's count is not to hand.

It errs high (three bytes of JSON per token, where English runs nearer four), because it decides how much
of a rate limit or a budget a request may take before it is sent.
"""

from __future__ import annotations

from typing import Any

import orjson


def estimate_input_tokens(params: dict[str, Any]) -> int:
    size = len(orjson.dumps(params.get("messages"))) + len(orjson.dumps(params.get("system")))
    if "tools" in params:
        size += len(orjson.dumps(params["tools"]))
    return size // 3 + 8


_CACHE_READS_COUNT = ("claude-3-haiku", "claude-3-5-haiku", "claude-3-opus")


def itpm_charge(usage: dict[str, Any], model: str) -> int:
    """The input tokens a request counts against the input-tokens-per-minute limit, from its usage.

    Cache writes count and cache reads do not, except for the older models the rate-limit docs mark
    (https://docs.claude.com/en/api/rate-limits, "cache-aware ITPM"): Haiku 3, Haiku 3.5 and Opus 3.
    """
    charge = int(usage.get("input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0)
    if model.startswith(_CACHE_READS_COUNT):
        charge += int(usage.get("cache_read_input_tokens") or 0)
    return charge
