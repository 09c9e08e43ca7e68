"""The prompt cache's rules, in one place: batchstream's auto-caching and the simulator both obey these.

Sources (checked 2026-12): the prompt caching page,
https://platform.claude.com/docs/en/build-with-claude/prompt-caching (minimum cacheable length per model,
at most 4 breakpoints, cache order tools -> system -> messages, TTL 5m (default) or 1h, refreshed on
every read; writes bill 1.25x / 2x the input price, reads 0.1x), its section "Pre-warming the cache"
(`max_tokens: 0` fills the cache without generating), and the SDK's `MessageCreateParams.max_tokens`
docstring that links there. LiteLLM's table of the same minimums (docs.litellm.ai, prompt caching,
2026-10-07) agrees, and names the 512-token minimum of the generation-5 Opus, Fable and Mythos models.
"""

from __future__ import annotations

import functools
import re

MAX_BREAKPOINTS = 4
TTL_5M = "5m"
TTL_1H = "1h"
TTL_SECONDS = {TTL_5M: 300.0, TTL_1H: 3600.0}

# (pattern of model ids, dated snapshots included; the fewest tokens a cached prefix may hold), first match.
_MINIMUMS: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(pattern), tokens)
    for pattern, tokens in (
        (r"claude-(?:opus|fable|mythos)-5(?:-.*)?", 512),
        (r"claude-mythos-preview(?:-.*)?", 4096),
        (r"claude-(?:opus-4-[567]|haiku-4-5)(?:-.*)?", 4096),
        (r"claude-(?:sonnet-5|opus-4-8|sonnet-4|opus-4|3-[57]-sonnet|3-opus)(?:-.*)?", 1024),
        (r"claude-(?:3-5-|3-)haiku(?:-.*)?", 2048),
    )
)
# A model the table does not know: the highest minimum any model has, so that a prefix batchstream marks
# for caching is long enough whatever the model turns out to need.
DEFAULT_MINIMUM = 4096


@functools.cache  # once per model: it is asked for every item
def min_cacheable_tokens(model: str) -> int:
    """The fewest tokens a prefix up to a breakpoint must hold for `model` to cache it (shorter: no error,
    just no caching)."""
    for pattern, tokens in _MINIMUMS:
        if pattern.fullmatch(model):
            return tokens
    return DEFAULT_MINIMUM


def ttl_of(control: object) -> str:
    """The TTL a `cache_control` object asks for: "1h" only when it says so."""
    return TTL_1H if isinstance(control, dict) and control.get("ttl") == TTL_1H else TTL_5M
