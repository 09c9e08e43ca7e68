"""The Messages API's request-body fields, listed once for input validation, `estimate` and the simulator.

A line is checked against these before anything is sent, so a field missing here would refuse a request the
API takes; tests/test_apifields.py holds the list to the SDK's own request types (beta ones included), a
source nobody here wrote. Fields the SDK sends as headers (`betas`, `user_profile_id`, `workspace_id`) are
not body fields and are not listed.
"""

from __future__ import annotations

import re

# The oldest API version whose streaming format batchstream reads; it still takes the sampling fields.
LEGACY_API_VERSION = "2023-06-01"
# Accepted by API versions before 2026-10-21 (left the SDK's signatures in 2.x; sent in the body as written).
SAMPLING_FIELDS = ("temperature", "top_p", "top_k")
# The first API version that refuses the sampling fields at any value; SDK 2.x sends it by default.
SAMPLING_REMOVED_IN = "2026-10-21"
# Models that refuse the sampling fields even on 2023-06-01 ("`temperature` is deprecated for this model."):
# Opus 4.7 and 4.8, and every generation-5 model, dated snapshots included.
NO_SAMPLING_MODEL = re.compile(r"claude-(?:[a-z]+-5|opus-4-[78])(?:-.*)?")

# What POST /v1/messages/count_tokens takes (it refuses max_tokens and sampling as extra inputs).
COUNT_TOKENS_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "cache_control",
        "speed",
        "output_config",
        # beta (sent with the line's `betas`)
        "mcp_servers",
        "context_management",
        "compaction",
        "billing_policy",
        # an older beta's spelling of output_config.format, still accepted with its beta header
        "output_format",
    }
)

# What POST /v1/messages takes, apart from `stream` (batchstream always streams and sets it itself).
MESSAGES_FIELDS: frozenset[str] = COUNT_TOKENS_FIELDS | {
    "max_tokens",
    "metadata",
    "stop_sequences",
    *SAMPLING_FIELDS,
    "service_tier",
    "container",
    "inference_geo",
    "diagnostics",
    # beta
    "fallbacks",
    "fallback_credit_token",
    "thread",
}
