"""The Message Batches API: create, retrieve, list (paged), results (JSONL), cancel, delete.

Shaped as the service documents it (https://docs.anthropic.com/en/api/creating-message-batches and the
SDK's `types/messages/message_batch*.py`): a batch is `in_progress` until `batch_processing_s` after its
creation (then `ended`), `canceling` after a cancel until the next look at it, counts stay in
`processing` until the batch ends, and each request's result is the non-streaming reply the Messages
endpoint would give the same body, unless a knob makes it `errored` (transient: overloaded_error or
api_error) or `expired`. Every batch stays in `created`, the simulator's record a test checks for items
submitted twice.

The Batches API's prompt cache is its own (`cache`), apart from the Messages endpoint's: a warm-up
through one does not help the other. Its rules are the same (breakpoints, TTLs, minimum lengths); a
batch's requests run side by side, so each reads the cache as its batch found it, and what they write is
read by later batches.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .cache import Lookup, PromptCache
from .config import SimulatorConfig
from .directives import DirectiveError, parse_directives
from .replies import build_reply, request_key
from .validation import validate_messages_body
from .wire import DEFAULT_ERROR_MESSAGES, ERROR_TYPES, message_object, new_id

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# https://docs.anthropic.com/en/docs/build-with-claude/batch-processing#batch-limitations
MAX_REQUESTS = 100_000
EXPIRY_S = 24 * 3600
RESULTS_KEPT_S = 29 * 24 * 3600
PATH_PREFIX = "/v1/messages/batches"
_TRANSIENT = ("overloaded_error", "api_error")


class BatchError(Exception):
    """An API error answer: status and message (the type follows the status, as in `wire.ERROR_TYPES`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Batch:
    id: str
    created: float  # time.time()
    ends: float
    requests: list[tuple[str, dict[str, Any]]]  # (custom_id, params) in the order given
    api_version: str
    cancel_initiated: float | None = None
    ended: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    @property
    def status(self) -> str:
        if self.ended is not None:
            return "ended"
        return "canceling" if self.cancel_initiated is not None else "in_progress"

    def counts(self) -> dict[str, int]:
        tally = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.ended is None:
            tally["processing"] = len(self.requests)
        else:
            for line in self.results:
                tally[line["result"]["type"]] += 1
        return tally

    def as_object(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": self.counts(),
            "ended_at": None if self.ended is None else _timestamp(self.ended),
            "created_at": _timestamp(self.created),
            "expires_at": _timestamp(self.created + EXPIRY_S),
            "archived_at": None,
            "cancel_initiated_at": None
            if self.cancel_initiated is None
            else _timestamp(self.cancel_initiated),
            "results_url": None if self.ended is None else f"{base_url}{PATH_PREFIX}/{self.id}/results",
        }


class BatchStore:
    """Every batch the simulator was given, newest last; all calls on the server's loop."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.batches: dict[str, Batch] = {}
        self._clock = clock
        # How often each request body was submitted in a batch: a resubmission draws its outcome anew.
        self._submissions: dict[str, int] = {}
        self._drops_left = config.batch_create_drop_first
        self._fails_left = config.batch_create_fail_first
        self.cache = PromptCache(clock)

    # -- the API ----------------------------------------------------------------------------------------

    def create(self, body: Any, api_version: str) -> Batch:
        if self._fails_left > 0:  # `batch_create_fail_first`: overloaded, before anything is made
            self._fails_left -= 1
            raise BatchError(529, "Overloaded")
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list):
            raise BatchError(400, "requests: Field required")
        extra = sorted(set(body) - {"requests"})
        if extra:
            raise BatchError(400, f"{extra[0]}: Extra inputs are not permitted")
        if not requests:
            raise BatchError(400, "requests: List should have at least 1 item after validation, not 0")
        if len(requests) > self.config.batch_max_requests:
            raise BatchError(
                400,
                f"requests: List should have at most {self.config.batch_max_requests} items after "
                f"validation, not {len(requests)}",
            )
        seen: set[str] = set()
        taken: list[tuple[str, dict[str, Any]]] = []
        for n, entry in enumerate(requests):
            if not isinstance(entry, dict):
                raise BatchError(400, f"requests.{n}: Input should be a valid dictionary")
            custom_id, params = entry.get("custom_id"), entry.get("params")
            if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
                raise BatchError(
                    400, f"requests.{n}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )
            if custom_id in seen:
                raise BatchError(400, f"requests.{n}.custom_id: Duplicate custom_id: {custom_id}")
            if not isinstance(params, dict):
                raise BatchError(400, f"requests.{n}.params: Input should be a valid dictionary")
            if params.get("stream"):
                raise BatchError(400, f"requests.{n}.params.stream: Batch requests cannot be streamed")
            seen.add(custom_id)
            taken.append((custom_id, params))
        now = self._clock()
        batch = Batch(new_id("msgbatch_"), now, now + self.config.batch_processing_s, taken, api_version)
        self.batches[batch.id] = batch
        return batch

    def drop_create(self) -> bool:
        """Whether the create call just served is to go unanswered (`batch_create_drop_first`)."""
        if self._drops_left <= 0:
            return False
        self._drops_left -= 1
        return True

    def retrieve(self, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.deleted:
            raise BatchError(404, f"Message batch {batch_id} not found.")
        self._advance(batch)
        return batch

    def list_page(self, query: dict[str, str]) -> dict[str, Any]:
        """Newest first; `after_id` pages to older batches, `before_id` to newer ones."""
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise BatchError(400, "limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise BatchError(400, "limit: Input should be between 1 and 1000")
        newest_first = [b for b in reversed(self.batches.values()) if not b.deleted]
        ids = [b.id for b in newest_first]
        after, before = query.get("after_id"), query.get("before_id")
        if after is not None and before is not None:
            raise BatchError(400, "after_id and before_id cannot both be given")
        if after is not None:
            start = ids.index(after) + 1 if after in ids else len(ids)
            page, has_more = newest_first[start : start + limit], start + limit < len(ids)
        elif before is not None:
            end = ids.index(before) if before in ids else 0
            page, has_more = newest_first[max(0, end - limit) : end], end - limit > 0
        else:
            page, has_more = newest_first[:limit], limit < len(ids)
        for batch in page:
            self._advance(batch)
        return {
            "data": page,
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }

    def results(self, batch_id: str) -> bytes:
        batch = self.retrieve(batch_id)
        if batch.ended is None:
            raise BatchError(
                400, f"Message batch {batch_id} is still processing; its results are not available yet."
            )
        return b"".join(orjson.dumps(line) + b"\n" for line in batch.results)

    def cancel(self, batch_id: str) -> Batch:
        batch = self.retrieve(batch_id)
        if batch.ended is not None:
            raise BatchError(400, f"Message batch {batch_id} has already ended and cannot be canceled.")
        if batch.cancel_initiated is None:
            batch.cancel_initiated = self._clock()
        return batch

    def delete(self, batch_id: str) -> dict[str, str]:
        batch = self.retrieve(batch_id)
        if batch.ended is None:
            raise BatchError(
                400,
                f"Message batch {batch_id} cannot be deleted while it is still processing; cancel it first.",
            )
        batch.deleted = True
        return {"id": batch.id, "type": "message_batch_deleted"}

    def record(self) -> list[dict[str, Any]]:
        """Every batch ever created, deleted ones too: what tests check submissions against."""
        return [
            {
                "id": b.id,
                "custom_ids": [custom_id for custom_id, _ in b.requests],
                "keys": [request_key(params) for _, params in b.requests],
                "status": b.status,
                "counts": b.counts(),
                # Per request, once ended: succeeded, canceled, expired, or the errored result's error type.
                "outcomes": [_outcome(line["result"]) for line in b.results],
            }
            for b in self.batches.values()
        ]

    # -- processing -------------------------------------------------------------------------------------

    def _advance(self, batch: Batch) -> None:
        """End the batch once its time has come, or at the first look after a cancel."""
        if batch.ended is not None:
            return
        now = self._clock()
        if batch.cancel_initiated is not None and batch.cancel_initiated < now:
            batch.results = [_line(custom_id, {"type": "canceled"}) for custom_id, _ in batch.requests]
            batch.ended = now
        elif now >= batch.ends:
            processed = [self._process(custom_id, params, batch) for custom_id, params in batch.requests]
            batch.results = [line for line, _ in processed]
            for _, found in processed:
                if found is not None:
                    self.cache.store(found)
            batch.ended = now

    def _process(
        self, custom_id: str, params: dict[str, Any], batch: Batch
    ) -> tuple[dict[str, Any], Lookup | None]:
        """A request's result line, and what it writes to the cache once its batch has run."""
        key = request_key(params)
        nth = self._submissions[key] = self._submissions.get(key, 0) + 1
        draw = random.Random(f"{self.config.seed}:{key}:{nth}").random()
        config = self.config
        if draw < config.p_batch_expired:
            return _line(custom_id, {"type": "expired"}), None
        if draw < config.p_batch_expired + config.p_batch_errored:
            kind = _TRANSIENT[nth % 2]
            status = 529 if kind == "overloaded_error" else 500
            return _errored(custom_id, kind, DEFAULT_ERROR_MESSAGES[status]), None
        problem = validate_messages_body(params, batch.api_version)
        if problem:
            return _errored(custom_id, "invalid_request_error", problem), None
        try:
            directives = parse_directives(params)
        except DirectiveError as exc:
            return _errored(custom_id, "invalid_request_error", str(exc)), None
        if directives.status is not None:
            status = directives.status
            return _errored(custom_id, ERROR_TYPES[status], DEFAULT_ERROR_MESSAGES[status]), None
        found = self.cache.lookup(params)
        if found.read > directives.cache_read:
            directives = dataclasses.replace(directives, cache_read=found.read)
        reply = build_reply(params, key, config.reply_tokens, directives)
        usage = {**reply.usage, "service_tier": "batch"}
        message = message_object(
            new_id("msg_"),
            reply.model or params["model"],
            reply.content,
            reply.stop_reason,
            reply.stop_sequence,
            usage,
            reply.stop_details,
        )
        return _line(custom_id, {"type": "succeeded", "message": message}), found


def _outcome(result: dict[str, Any]) -> str:
    return str(result["error"]["error"]["type"]) if result["type"] == "errored" else str(result["type"])


def _timestamp(epoch_s: float) -> str:
    """RFC 3339 with microseconds, as the service writes batch times."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def _line(custom_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "result": result}


def _errored(custom_id: str, error_type: str, message: str) -> dict[str, Any]:
    error = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": None}
    return _line(custom_id, {"type": "errored", "error": error})


def batch_json(value: Any, base_url: str) -> bytes:
    """A response body, with each `Batch` in it as the API's object."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Batch):
            return obj.as_object(base_url)
        raise TypeError

    return orjson.dumps(value, default=default, option=orjson.OPT_PASSTHROUGH_DATACLASS)
