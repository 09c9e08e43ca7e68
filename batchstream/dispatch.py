"""A run's streaming part (`--via stream`, the default): workers take items in input order and run each one's
attempts, a group's cache warm-up goes first, and the outage breaker and held rows see every outcome; wired to
the run's results file, budget, progress and stop (`runner._Run`), as `batches/run.py` is for `--via batches`.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

from .attempts import Cancelled, Failed, Fatal, Ok, Outcome, Unavailable, run_attempts
from .caching import Group
from .errors import OutputWriteError, UsageError
from .held import HeldRows
from .inputs import Request
from .limiter import LaunchController
from .outage import Breaker
from .plan import Plan, to_run
from .readahead import ReadAhead
from .record import ResultRecord, error_record, ok_record
from .stops import StopReason, fatal_error, outage_error, systematic_error
from .transport import Sender
from .transport.failures import classify
from .warmup import WARMUP_KIND, Unstreamed, Warmups, warmup_request

if TYPE_CHECKING:
    from .runner import _Run

# A request to launch and what the budget reserved for it.
_Launch = tuple[Request, float]

# Open files a run needs besides its connections: results, lock, summary, standard streams, the resolver.
_SPARE_FILES = 64


async def stream_items(run: _Run, plan: Plan, stack: ExitStack) -> None:
    """Stream the items `plan` leaves to do, until none are left or the run stops."""
    # The SDK is imported only once a request is due: a run with nothing to send never pays its ~1.3 s.
    # Its long-lived objects are frozen out of the collector's way like everything before (run_batch).
    from .transport.streaming import StreamingSender

    config = run.config
    # Loading the price table on the first reply instead would hold up every reply queued behind it.
    run.pricer.prepare(plan.models)
    gc.freeze()
    limits = config.limits
    # Each connection is an open file; with --simulate, so is the simulator's end of it.
    _ensure_open_files(limits.concurrency * (2 if config.simulate else 1) + _SPARE_FILES)
    base_url, api_key = run.endpoint(stack)
    sender = StreamingSender(
        api_key=api_key,
        base_url=base_url,
        max_connections=limits.concurrency,
        stall_timeout=config.retry.stall_timeout,
        api_version=config.defaults.api_version,
    )
    run.secret = sender.api_key
    try:
        await _Dispatcher(run, sender).stream(plan)
    finally:
        await asyncio.shield(sender.aclose())


class _Dispatcher:
    def __init__(self, run: _Run, sender: Sender) -> None:
        self.run = run
        self.config = config = run.config
        limits = config.limits
        self.sender = sender
        self.controller = LaunchController(
            limits.concurrency, rpm=limits.rpm, itpm=limits.itpm, otpm=limits.otpm
        )
        self.breaker = Breaker(config.retry.max_outage)
        self.held = HeldRows()
        self.warmups = Warmups(self._warm_up) if run.cache_plan else None
        self.rng = random.Random(config.seed)
        self._input_done = False  # every request this run owns has been taken

    async def stream(self, plan: Plan) -> None:
        background = [
            asyncio.create_task(self._sync_every_second()),
            asyncio.create_task(self._tick_progress()),
        ]
        try:
            await self.run.watched(self._dispatch(plan))
        finally:
            self._show_outage()  # an outage that ended since the last tick says so
            for row in self.held.release(outage=self.run.stopped is StopReason.OUTAGE):
                self.run.record(*row)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self.warmups is not None:
                await self.warmups.aclose()

    async def _dispatch(self, plan: Plan) -> None:
        """Up to `concurrency` workers, each running items one after another until none are left.

        A worker per slot, not a task per item: over a long batch, starting a task for every one of hundreds
        of thousands of items is a cost per item that buys nothing. Items are still taken from the input
        one at a time and in order (`_next_item`), some of them read ahead in the loop's idle moments
        (`ReadAhead`).
        """
        pending = ReadAhead(
            to_run(self.config, plan),
            limit=self.config.limits.concurrency,
            activity=lambda: self.run.progress.done,
        )
        taking = asyncio.Lock()
        async with asyncio.TaskGroup() as workers:
            for _ in range(self.config.limits.concurrency):
                if not self._launching:
                    break
                workers.create_task(self._work(pending, taking), name="batchstream-worker")
                # A turn for the new worker, which takes and launches its first item before this loop goes
                # on: starting thousands of requests in one go would hold the loop for as long as building
                # them all takes, and every open stream would wait.
                await asyncio.sleep(0)
            # Only now: reading ahead while the first wave launches would hold that wave up.
            workers.create_task(pending.fill(), name="batchstream-read-ahead")

    async def _work(self, pending: ReadAhead[Request], taking: asyncio.Lock) -> None:
        while True:
            async with taking:
                item = await self._next_item(pending)
            if item is None:
                pending.close()
                return
            await self._run_item(*item)

    async def _next_item(self, pending: Iterator[Request]) -> _Launch | None:
        """The next request and its budget reservation, or None once nothing more is to be launched.

        Only one worker at a time is in here (the `taking` lock), so items are launched in file order and
        the budget turns down exactly one item before launching stops, as with a single dispatcher.
        """
        if not self._launching:
            return None
        request = next(pending, None)
        if request is None:
            self._input_done = True
            return None
        worst = 0.0
        budget = self.run.budget
        if budget is not None:
            worst = budget.worst_case(request)
            if not await budget.reserve(worst):
                self.run.stopped = StopReason.BUDGET
                self.run.host.log(
                    f"budget: the next item could cost up to ${worst:.6f}, taking the spend "
                    f"past --max-cost ${budget.limit_usd:g} (spent ${budget.spent_usd:.6f}); "
                    "no more items are launched"
                )
                return None
        return request, worst

    async def _run_item(self, request: Request, reserved_usd: float) -> None:
        assert self.run.writer is not None
        record: ResultRecord | None = None
        try:
            cached = 0
            if self.run.cache_plan is not None:
                request, group = self.run.cache_plan.apply(request)
                if group is not None and self.warmups is not None:
                    await self.warmups.ready(request, group)
                    cached = group.tokens
            outcome = await self._attempts(request, self.sender, cached)
            if isinstance(outcome, Cancelled):
                return
            if isinstance(outcome, Fatal):
                self.run.stop(fatal_error(outcome.failure, self.run.output))
                return
            if isinstance(outcome, Unavailable):
                breaker = self.breaker
                error = outage_error(
                    breaker.since, breaker.max_outage_s, breaker.describe_failure(), self.run.output
                )
                self.run.stop(error, StopReason.OUTAGE)
                return
            if isinstance(outcome, Ok):
                try:
                    record = ok_record(
                        request,
                        outcome.sent,
                        outcome.attempts,
                        outcome.retries,
                        self.run.pricer,
                        content=self.config.output.content,
                    )
                except Exception as exc:  # the reply came and is paid for: that item fails, the run goes on
                    failure = classify(exc, secret=self.run.secret)
                    record = error_record(request, failure, outcome.attempts, outcome.retries)
                finished = [*self.held.succeeded(), (request, record)]
            else:
                record = error_record(request, outcome.failure, outcome.attempts, outcome.retries)
                finished = self.held.failed(request, record, outcome.failure)
                if self.held.tripped is not None:
                    self.run.stop(systematic_error(self.held.tripped, self.held.count, self.run.output))
            for item in finished:
                written = self.run.record(*item)
                if item[0] is request:
                    record = written
                if written is None:
                    return
        finally:
            if self.run.budget is not None:
                self.run.budget.settle(reserved_usd, record["cost_usd"] if record is not None else None)

    async def _attempts(self, request: Request, sender: Sender, cached_tokens: int = 0) -> Outcome:
        return await run_attempts(
            request,
            sender,
            self.controller,
            self.breaker,
            self.config.retry,
            rng=self.rng,
            secret=self.run.secret,
            stopping=self.run.stopping,
            cached_tokens=cached_tokens,
        )

    async def _warm_up(self, item: Request, group: Group) -> None:
        """Send `group`'s warm-up and record it as a line of its own; a failed one only costs the group its
        head start (its items still write and read the cache themselves)."""
        request = warmup_request(item, group)
        if request is None:
            return
        budget = self.run.budget
        worst = budget.worst_case(request) if budget is not None else 0.0
        if budget is not None and not budget.try_reserve(worst):
            self.run.host.log("budget: no room for a cache warm-up now; its group runs without it")
            return
        cost = None
        try:
            outcome = await self._attempts(request, Unstreamed(self.sender))
            if isinstance(outcome, Ok):
                record = ok_record(
                    request, outcome.sent, outcome.attempts, outcome.retries, self.run.pricer, content=False
                )
                record["kind"] = WARMUP_KIND
                written = self.run.record(request, record)
                if written is not None:
                    cost = written["cost_usd"]
            elif isinstance(outcome, Failed | Fatal):
                failure = outcome.failure
                self.run.host.log(
                    f"warning: a cache warm-up failed ({failure.type}: {failure.message}); "
                    f"its {group.items} items run without it"
                )
        finally:
            if budget is not None:
                budget.settle(worst, cost)

    async def _sync_every_second(self) -> None:
        assert self.run.writer is not None
        while True:
            await asyncio.sleep(1.0)
            try:
                await asyncio.to_thread(self.run.writer.sync)
            except OutputWriteError as exc:
                self.run.stop(exc)
                return

    async def _tick_progress(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._show_outage()
            self.run.progress.paced_by = self.controller.paced_by
            self.run.progress.tick()

    def _show_outage(self) -> None:
        """Say when an outage begins and ends, and keep its note on the progress line while it lasts."""
        notice = self.breaker.notice()
        if notice is not None and self.run.progress.notice is None:
            self.run.host.log(
                f"{notice}: {self.breaker.describe_failure()}. Nothing new is launched until a probe "
                f"succeeds; the run stops after --max-outage {self.config.retry.max_outage:g} s"
            )
        elif notice is None and self.run.progress.notice is not None:
            self.run.host.log("API available again: resuming")
        self.run.progress.notice = notice

    @property
    def _launching(self) -> bool:
        """Whether items are still to be launched: input left, and no stop of any kind."""
        return not self._input_done and self.run.stopped is StopReason.COMPLETED


def _ensure_open_files(needed: int) -> None:
    """Raise the soft limit on open files to `needed`, so a wide run does not fail its first wave.

    The usual default soft limit (1,024) is below what --concurrency 2000 needs, while the hard limit is
    mostly far higher; past the hard limit, say so before anything is sent.
    """
    try:
        import resource
    except ImportError:  # not on Windows, where there is no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UsageError(
            f"this --concurrency needs about {needed:,} open files, and this process may open at most "
            f"{hard:,} (`ulimit -Hn`): lower --concurrency or raise the limit"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
