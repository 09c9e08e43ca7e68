"""The SDK client every sender builds: on the SDK's aiohttp transport, with the run's key, base URL and API
version, refused at once when there is no key at all (not once per item)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from ..errors import NO_API_KEY, UsageError


def sdk_client(
    *,
    api_key: str | None,
    base_url: str | None,
    api_version: str | None,
    max_retries: int,
    timeout: httpx2.Timeout | None = None,
    limits: httpx2.Limits | None = None,
) -> anthropic.AsyncAnthropic:
    """`api_version` (None: the SDK's own) replaces the anthropic-version header the SDK would send."""
    given: dict[str, Any] = {"timeout": timeout, "limits": limits}
    transport = {name: value for name, value in given.items() if value is not None}
    client = anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=max_retries,
        http_client=anthropic.DefaultAioHttpClient(**transport),
        default_headers={"anthropic-version": api_version} if api_version else None,
        **({"timeout": timeout} if timeout is not None else {}),
    )
    if client.api_key is None and client.auth_token is None:
        # No key given, and none in the SDK's ANTHROPIC_API_KEY: say so before anything is sent.
        raise UsageError(NO_API_KEY)
    return client
