"""The Message Batches API through the SDK's public `messages.batches` calls, on its aiohttp transport.

Every call but `create` may be retried by the SDK (they read, or cancel, which is idempotent). `create` is
sent once: an answer lost on the way back would otherwise make a second batch of the same items, and the
engine settles that case itself, from the list of batches (`engine.reconcile`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from anthropic.types.messages import MessageBatch

from ..transport.client import sdk_client
from .chunks import batch_entry
from .journal import Intent

# Reads and cancels: retried by the SDK with its backoff, as they are safe to repeat. An outage longer than
# its few tries is the engine's to wait out (up to --max-outage), so the SDK's default number is enough.
_READ_RETRIES = 2
# How far back the list is read for a batch an interrupted create may have made: the list is newest first,
# so reading stops at the first batch older than the intent (less this much, for clock skew).
CLOCK_SKEW_S = 300.0


class BatchClient:
    def __init__(self, *, api_key: str | None, base_url: str | None, api_version: str | None) -> None:
        self._client = sdk_client(
            api_key=api_key, base_url=base_url, api_version=api_version, max_retries=_READ_RETRIES
        )

    @property
    def api_key(self) -> str | None:
        return self._client.api_key

    async def aclose(self) -> None:
        await self._client.close()

    async def create(self, requests: list[Any], betas: tuple[str, ...]) -> MessageBatch:
        headers = {"anthropic-beta": ",".join(betas)} if betas else None
        return await self._client.with_options(max_retries=0).messages.batches.create(
            requests=[batch_entry(request) for request in requests], extra_headers=headers
        )

    async def retrieve(self, batch_id: str) -> MessageBatch:
        return await self._client.messages.batches.retrieve(batch_id)

    async def cancel(self, batch_id: str) -> MessageBatch:
        return await self._client.messages.batches.cancel(batch_id)

    async def results(self, batch_id: str) -> AsyncIterator[Any]:
        async for line in await self._client.messages.batches.results(batch_id):
            yield line

    async def created_since(self, at: float) -> list[MessageBatch]:
        """The batches created since `at` (less CLOCK_SKEW_S), oldest first."""
        found: list[MessageBatch] = []
        async for batch in self._client.messages.batches.list(limit=100):
            if batch.created_at.timestamp() < at - CLOCK_SKEW_S:
                break
            found.append(batch)
        return found[::-1]


def candidate_for(intent: Intent, batches: list[MessageBatch], taken: set[str]) -> MessageBatch | None:
    """The batch an interrupted create most likely made: the first one created since the intent, not
    claimed by another intent, with as many requests as the intent had items."""
    for batch in batches:
        counts = batch.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        if batch.id not in taken and total == len(intent.items) and _after(batch.created_at, intent.at):
            return batch
    return None


def _after(created: datetime, at: float) -> bool:
    return created.timestamp() >= at - CLOCK_SKEW_S
