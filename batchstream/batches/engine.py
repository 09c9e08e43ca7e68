"""`--via batches`: submit the items still to do as Message Batches, wait for them, record their results.

The life of a run: re-attach to the batches the journal says this results file waits for (and settle any
create call a crash left unanswered), submit the rest in chunks, then poll until every batch has ended,
recording each batch's results as it ends and submitting again, in a later batch, the items that ended
transiently (errored with overloaded_error or api_error, or expired) while they have attempts left.

What each outcome means for an item:
- succeeded: recorded ok, priced at the batch rate;
- errored with a request error (invalid_request_error, ...): recorded as an error, the API's type and
  message;
- errored transiently, or expired: submitted again while `--max-attempts` allows, else recorded as error;
- canceled: not recorded (a resume submits it again), unless this run canceled it for `--batch-deadline`:
  then it is handed back to be streamed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..budget import Budget
from ..config import RunConfig
from ..errors import FatalAPIError
from ..inputs import Request
from ..pricing import Pricer
from ..progress import Progress
from ..record import ResultRecord, error_record, message_record
from ..transport.failures import Failure, classify
from ..warmup import WARMUP_KIND, is_warmup_id
from .chunks import chunks, custom_id
from .client import BatchClient, candidate_for
from .journal import Intent, Journal
from .priming import Priming

TRANSIENT_ERRORS = frozenset({"overloaded_error", "api_error"})
_EXPIRED = "the request expired before its batch processed it"
FIRST_POLL_S = 5.0
LAST_POLL_S = 60.0
POLL_GROWTH = 1.5


@dataclass
class _Waiting:
    """A batch being waited for: its journal entry, and its items by custom_id (those still to record)."""

    intent: Intent
    items: dict[str, Request]
    expected: set[str]  # every custom_id the intent submitted, to verify an adopted batch by
    stale: list[Request] = field(default_factory=list)  # items whose input changed since: submitted anew
    adopted: bool = False  # found from the list after an interrupted create, not from its answer
    created_at: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    deadline_canceled: bool = False

    @property
    def batch_id(self) -> str:
        assert self.intent.batch_id is not None
        return self.intent.batch_id


@dataclass
class Outcome:
    to_stream: list[Request] = field(default_factory=list)  # canceled by --batch-deadline
    budget_stop: str | None = None  # why no more items were submitted
    canceled: int = 0  # items of batches canceled from outside this run: not recorded, left to do


_T = TypeVar("_T")
# Waits between tries of a Batches API call while it fails as an outage would: doubling, up to this.
_OUTAGE_WAIT_S = (1.0, 30.0)


class BatchesUnavailable(Exception):
    """The Batches API failed as an outage would, with no call succeeding, for longer than --max-outage."""

    def __init__(self, since: float, max_outage_s: float, failure: Failure) -> None:
        super().__init__(failure.describe())
        self.since = time.strftime("%H:%M:%S", time.localtime(since))
        self.max_outage_s = max_outage_s
        self.failure = failure


class _OutageClock:
    """Since when the Batches API calls have failed as an outage would (the network, 5xx, 529), with none
    succeeding: the run waits that out, as the streaming path's breaker does, up to --max-outage."""

    def __init__(self, max_outage_s: float) -> None:
        self.max_outage_s = max_outage_s
        self._since: float | None = None
        self._wait = _OUTAGE_WAIT_S[0]

    def succeeded(self) -> None:
        self._since = None
        self._wait = _OUTAGE_WAIT_S[0]

    def failed(self, failure: Failure) -> float:
        """How long to wait before trying again; raises BatchesUnavailable once the outage outlasts
        --max-outage."""
        now = time.time()
        if self._since is None:
            self._since = now
        if now - self._since >= self.max_outage_s:
            raise BatchesUnavailable(self._since, self.max_outage_s, failure)
        wait = max(self._wait, failure.retry_after or 0.0)
        self._wait = min(self._wait * 2, _OUTAGE_WAIT_S[1])
        return min(wait, self._since + self.max_outage_s - now)


class BatchEngine:
    def __init__(
        self,
        config: RunConfig,
        requests: Iterable[Request],
        client: BatchClient,
        journal: Journal,
        *,
        pricer: Pricer,
        budget: Budget | None,
        progress: Progress,
        record: Callable[[Request, ResultRecord], object],
        sync: Callable[[], None],
        log: Callable[[str], None],
        priming: Priming | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.journal = journal
        self.pricer = pricer
        self.budget = budget
        self.progress = progress
        self._record = record
        self.priming = priming
        if priming is not None:  # breakpoints added before chunking: the batches carry them
            requests = map(priming.apply, requests)
        self._sync = sync
        self._log = log
        # Items still to record, by id, in input order.
        self.todo: dict[str, Request] = {request.id: request for request in requests}
        self.waiting: dict[str, _Waiting] = {}
        self.attempts = journal.submissions()
        self.retries = journal.retries()
        self.reserved: dict[str, float] = {}
        self.outcome = Outcome()
        self._unsent: dict[str, Request] = dict(self.todo)  # to do and in no batch
        self._rng = random.Random(config.seed)  # the jitter of waits before a create is tried again
        self._outage = _OutageClock(config.retry.max_outage)
        self._last_status = ""

    # -- the run ----------------------------------------------------------------------------------------

    async def run(self) -> Outcome:
        for intent in self.journal.waiting:
            self._attach(intent, adopted=False)
        unresolved = self.journal.unresolved
        if unresolved:
            await self._reconcile(unresolved)
        interval = self.config.batches.poll_interval or FIRST_POLL_S
        while True:
            if self.outcome.budget_stop is None:
                await self._submit()
            if not self.waiting:
                break
            await self._poll()
            if self.waiting:
                self._show()
                await asyncio.sleep(interval)
                if self.config.batches.poll_interval is None:
                    interval = min(LAST_POLL_S, interval * POLL_GROWTH)
        return self.outcome

    def _attach(self, intent: Intent, *, adopted: bool) -> None:
        """Wait for `intent`'s batch, mapping back those of its items still to do with the same request."""
        items: dict[str, Request] = {}
        stale: list[Request] = []
        for item_id, request_hash in intent.items:
            request = self.todo.get(item_id)
            if request is None and self.priming is not None and is_warmup_id(item_id):
                request = self.priming.attached(item_id)
            if request is not None:
                if request.request_hash == request_hash:
                    items[custom_id(item_id)] = request
                    self._hold(request)
                else:
                    stale.append(request)
            self._unsent.pop(item_id, None)
        expected = {custom_id(item_id) for item_id in intent.ids}
        self.waiting[intent.token] = _Waiting(intent, items, expected, stale, adopted)

    def _hold(self, request: Request) -> None:
        """What an item of a batch created by an earlier run may cost, held against --max-cost."""
        if self.budget is not None and request.id not in self.reserved:
            worst = self.reserved[request.id] = self.budget.worst_case(request, batch=True)
            self.budget.hold(worst)

    async def _reconcile(self, intents: list[Intent]) -> None:
        """Settle create calls that got no answer: a batch created since with as many requests is taken as
        theirs (and verified by its custom_ids once it ends); with none, no batch was made."""
        since = min(intent.at for intent in intents)
        batches = await self._through_outages(lambda: self.client.created_since(since))
        taken = self.journal.known_batch_ids()
        for intent in intents:
            batch = candidate_for(intent, batches, taken)
            if batch is None:
                self.journal.voided(intent)
                continue
            taken.add(batch.id)
            self._log(f"batch {batch.id}: adopted (its create call got no answer; found in the list)")
            self.journal.created(intent, batch.id)
            self._attach(intent, adopted=True)

    # -- submitting -------------------------------------------------------------------------------------

    async def _submit(self) -> None:
        if self.priming is not None:
            await self._prime(self.priming)
        ready = self._within_budget()
        options = self.config.batches
        for chunk in list(chunks(ready, options.size, options.max_bytes, self._too_large)):
            for request in chunk.requests:
                del self._unsent[request.id]
            await self._create(chunk.requests, chunk.betas)

    async def _prime(self, priming: Priming) -> None:
        """A single-request batch for each group with items to submit and no priming yet; within
        --max-cost as the streamed warm-up is, and skipped (the group going ahead) where it does not fit."""
        for warmup in list(priming.due(self._unsent.values())):
            if self.budget is not None:
                worst = self.budget.worst_case(warmup, batch=True)
                if not self.budget.try_reserve(worst):
                    self._log("budget: no room for a cache priming batch now; its group runs without it")
                    priming.ended(warmup)
                    continue
                self.reserved[warmup.id] = worst
            await self._create([warmup], warmup.betas)

    async def _create(self, requests: list[Request], betas: tuple[str, ...]) -> None:
        """One batch of `requests`, journalled before the call; a call with no answer (or a 429 or 5xx)
        is settled from the list, then tried again: within --max-attempts, or up to --max-outage while it
        fails as an outage would (those tries are not counted)."""
        policy = self.config.retry
        attempt = 0
        while True:
            intent = self.journal.intend([(request.id, request.request_hash) for request in requests])
            self.attempts.update(request.id for request in requests)
            try:
                batch = await self.client.create(requests, betas)
            except Exception as exc:
                failure = classify(exc, secret=self.client.api_key)
                if failure.status is not None and not failure.retryable:
                    self.journal.voided(intent)  # an answer: no batch was made, and none would be
                    raise _api_error(failure) from None
                self._log(f"creating a batch failed ({failure.type}: {failure.message}); checking the list")
                await self._reconcile([intent])
                if not intent.void:
                    return  # it was made after all, and is now waited for
                self.attempts.subtract(request.id for request in requests)
                if failure.outage:  # not this batch's fault: waited out up to --max-outage, not counted
                    await asyncio.sleep(self._outage.failed(failure))
                    continue
                attempt += 1
                if attempt < policy.max_attempts:
                    await asyncio.sleep(policy.delay(attempt, failure.retry_after, self._rng))
                    continue
                raise _api_error(failure) from None
            self._outage.succeeded()
            self.journal.created(intent, batch.id)
            self._attach(intent, adopted=False)
            self.waiting[intent.token].created_at = batch.created_at.timestamp()
            return

    def _within_budget(self) -> list[Request]:
        """The unsent items in order, as far as their worst case at the batch price fits the budget."""
        budget = self.budget
        unsent = self._unsent.values()
        if self.priming is not None:
            unsent = [request for request in unsent if not self.priming.holds(request)]
        if budget is None:
            return list(unsent)
        ready: list[Request] = []
        for request in unsent:
            if request.id in self.reserved:
                ready.append(request)
                continue
            worst = budget.worst_case(request, batch=True)
            if not budget.try_reserve(worst):
                if not budget.holding:
                    self.outcome.budget_stop = (
                        f"budget: the next item could cost up to ${worst:.6f} at the batch price, taking the "
                        f"spend past --max-cost ${budget.limit_usd:g} (spent ${budget.spent_usd:.6f}); no "
                        "more items are submitted"
                    )
                break
            self.reserved[request.id] = worst
            ready.append(request)
        return ready

    def _too_large(self, request: Request, size: int) -> None:
        failure = Failure(
            "client_error",
            False,
            False,
            413,
            "request_too_large",
            f"the request is {size:,} bytes, more than a batch may hold ({self.config.batches.max_bytes:,})",
        )
        del self._unsent[request.id]
        self._write(request, error_record(request, failure, 0, {}))

    # -- waiting ----------------------------------------------------------------------------------------

    async def _poll(self) -> None:
        deadline = self.config.batches.deadline
        for waiting in list(self.waiting.values()):
            try:
                batch = await self.client.retrieve(waiting.batch_id)
                lines = await self._results(waiting.batch_id) if batch.processing_status == "ended" else None
            except Exception as exc:  # the SDK retried it already: the next poll tries again
                failure = classify(exc, secret=self.client.api_key)
                if failure.fatal:
                    raise _api_error(failure) from None
                if failure.outage:
                    self._outage.failed(failure)  # past --max-outage, the run stops
                self._log(f"batch {waiting.batch_id}: {failure.type}: {failure.message}; trying again later")
                continue
            self._outage.succeeded()
            waiting.created_at = batch.created_at.timestamp()
            waiting.counts = batch.request_counts.model_dump()
            if lines is not None:
                self._collect(waiting, lines)
            elif (
                deadline is not None
                and batch.processing_status == "in_progress"
                and time.time() - waiting.created_at >= deadline
            ):
                self._log(f"batch {waiting.batch_id}: not ended within --batch-deadline; canceling it")
                await self.client.cancel(waiting.batch_id)
                waiting.deadline_canceled = True

    async def _through_outages(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """`call()`, tried again while it fails as an outage would, up to --max-outage: a call that must
        succeed before anything else may be sent (the list that settles a create call with no answer)."""
        while True:
            try:
                result = await call()
            except Exception as exc:
                failure = classify(exc, secret=self.client.api_key)
                if failure.status is None and not failure.fatal and not failure.outage:
                    raise  # not an answer of the API's nor the network's: a bug, shown as one
                if not failure.outage:
                    raise _api_error(failure) from None
                self._log(f"the Message Batches API is unavailable ({failure.describe()}); trying again")
                await asyncio.sleep(self._outage.failed(failure))
                continue
            self._outage.succeeded()
            return result

    async def _results(self, batch_id: str) -> dict[str, Any]:
        """An ended batch's results by custom_id, all of them before any is recorded."""
        return {line.custom_id: line.result async for line in self.client.results(batch_id)}

    def _collect(self, waiting: _Waiting, lines: dict[str, Any]) -> None:
        """Record an ended batch's results, then note it done: after a crash in between, a resume fetches
        them again and records only what the results file does not hold yet."""
        del self.waiting[waiting.intent.token]
        if waiting.adopted and set(lines) != waiting.expected:
            self._log(
                f"batch {waiting.batch_id}: its requests are not the ones this results file submitted; "
                "ignoring it, and submitting those items again"
            )
            self.journal.voided(waiting.intent)
            for request in waiting.items.values():
                self.attempts[request.id] -= 1
                self._again(request)
            return
        for request in waiting.stale:
            self._again(request)
        canceled = 0
        transient: dict[str, str] = {}
        deadline_over = self.config.batches.deadline is not None and (
            waiting.deadline_canceled or time.time() - waiting.created_at >= self.config.batches.deadline
        )
        for cid, request in waiting.items.items():
            result = lines.get(cid)
            kind = "canceled" if result is None else result.type
            if self.priming is not None and is_warmup_id(request.id):
                self._primed(self.priming, request, result, waiting.batch_id)
            elif kind == "succeeded":
                self._ok(
                    request, result.message.model_dump(mode="json", exclude_unset=True), waiting.batch_id
                )
            elif kind == "errored" and result.error.error.type not in TRANSIENT_ERRORS:
                error = result.error.error
                self._error(request, error.type, error.message, waiting.batch_id)
            elif kind in ("errored", "expired"):
                outcome = "expired" if kind == "expired" else result.error.error.type
                transient[request.id] = outcome
                self.retries.setdefault(request.id, Counter())[outcome] += 1
                if self.attempts[request.id] < self.config.retry.max_attempts:
                    self._again(request)
                else:
                    message = _EXPIRED if kind == "expired" else result.error.error.message
                    self._error(request, outcome, message, waiting.batch_id)
            elif deadline_over:
                self._release(request)
                self.outcome.to_stream.append(request)
            else:
                self._release(request)
                canceled += 1
        self._sync()
        self.journal.finished(waiting.intent, transient)
        if canceled:
            self.outcome.canceled += canceled
            self._log(
                f"batch {waiting.batch_id}: {canceled} item(s) canceled and not recorded; run the same "
                "command again to submit them anew"
            )

    # -- recording --------------------------------------------------------------------------------------

    def _ok(self, request: Request, message: dict[str, Any], batch_id: str, *, warmup: bool = False) -> None:
        record = message_record(
            request,
            message,
            self.attempts[request.id],
            self._retries(request),
            self.pricer,
            content=self.config.output.content and not warmup,
            latency_s=None,
            ttft_s=None,
            request_id=None,
            batch=True,
        )
        if warmup:
            record["kind"] = WARMUP_KIND  # a line of its own: counted in the summary, never an item
        self._write(request, _via_batch(record, batch_id))

    def _primed(self, priming: Priming, warmup: Request, result: Any, batch_id: str) -> None:
        """A priming batch ended: its warm-up recorded as a line of its own if it succeeded, and its group
        let go either way."""
        priming.ended(warmup)
        if result is not None and result.type == "succeeded":
            if priming.recorded(warmup):
                self._release(warmup)
            else:
                message = result.message.model_dump(mode="json", exclude_unset=True)
                self._ok(warmup, message, batch_id, warmup=True)
            return
        self._release(warmup)
        outcome = "canceled" if result is None else result.type
        if outcome == "errored":
            outcome = f"errored ({result.error.error.type}: {result.error.error.message})"
        self._log(f"batch {batch_id}: cache priming ended {outcome}; its group goes ahead without it")

    def _error(self, request: Request, error_type: str, message: str, batch_id: str) -> None:
        failure = Failure("batch", False, False, None, error_type, message)
        record = error_record(request, failure, self.attempts[request.id], self._retries(request))
        self._write(request, _via_batch(record, batch_id))

    def _retries(self, request: Request) -> dict[str, int]:
        return dict(self.retries.get(request.id) or {})

    def _write(self, request: Request, record: ResultRecord) -> None:
        self.todo.pop(request.id, None)
        worst = self.reserved.pop(request.id, None)
        self._record(request, record)
        if self.budget is not None and worst is not None:
            self.budget.settle(worst, record["cost_usd"])

    def _again(self, request: Request) -> None:
        """Into a later batch (its budget reservation still held for it); a warm-up, into a priming batch
        of its own again."""
        if self.priming is not None and is_warmup_id(request.id):
            self._release(request)
            self.priming.again(request)
        else:
            self._unsent[request.id] = request

    def _release(self, request: Request) -> None:
        worst = self.reserved.pop(request.id, None)
        self.todo.pop(request.id, None)
        if self.budget is not None and worst is not None:
            self.budget.settle(worst, None)

    # -- progress ---------------------------------------------------------------------------------------

    def _show(self) -> None:
        total: Counter[str] = Counter()
        parts = []
        for waiting in self.waiting.values():
            counts = waiting.counts
            total.update(counts)
            parts.append(f"{waiting.batch_id}: {_counts_text(counts)}")
        status = f"{len(self.waiting)} batch(es) waiting, {_counts_text(total)}"
        if status != self._last_status:
            self._last_status = status
            self.progress.note(status, parts)
        self.progress.tick()


def _counts_text(counts: dict[str, int] | Counter[str]) -> str:
    submitted = sum(counts.values())
    return (
        f"{submitted} submitted / {counts.get('processing', 0)} processing / {counts.get('succeeded', 0)} "
        f"succeeded / {counts.get('errored', 0)} errored / {counts.get('expired', 0)} expired"
    )


def _via_batch(record: ResultRecord, batch_id: str) -> ResultRecord:
    record["via"] = "batch"
    record["batch_id"] = batch_id
    return record


def _api_error(failure: Failure) -> Exception:
    status = "" if failure.status is None else f"HTTP {failure.status} "
    return FatalAPIError(
        f"the Message Batches API failed ({status}{failure.type}: {failure.message}). Results already "
        "written are kept, and the batches already created keep running; run the same command again to "
        "resume."
    )
