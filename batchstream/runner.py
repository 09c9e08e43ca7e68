"""run_batch: the life of a run, from an input file to a results file and a summary.

Validate and plan first (nothing is sent and no file is touched on bad input), lock the output, then run
up to `concurrency` workers that take items in input order, each item's attempts in `attempts.py`, each
finished item appended to the results file at once: that file is the checkpoint a later run resumes
from. This module holds the lifecycle, the dispatch and the one reason a run stops; what an item's line
says is `record.py`'s, what a failure means is `transport/failures.py`'s.

The library is quiet: it prints nothing, reads no environment variable and installs no signal handler
unless its `Host` says so. The command line's host shows progress, logs and the summary table.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import random
import signal
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from .attempts import Cancelled, Failed, Fatal, Ok, Outcome, Unavailable, run_attempts
from .budget import Budget
from .caching import CachePlan, Group, PrefixCounter
from .config import RunConfig, default_summary
from .errors import (
    BatchstreamError,
    ExitCode,
    InternalError,
    OutputWriteError,
    UsageError,
)
from .eventloop import new_event_loop
from .held import HeldRows
from .inputs import Request, deprecation_warnings
from .limiter import LaunchController
from .outage import Breaker
from .plan import Plan, make_plan, requests
from .pricing import Pricer
from .progress import Progress
from .readahead import ReadAhead
from .record import ResultRecord, error_record, ok_record
from .results import (
    Checkpoint,
    OutputLock,
    ResultWriter,
    drop_statuses,
    load_checkpoint,
    repair_tail,
    rewrite_in_order,
)
from .stops import fatal_error, outage_error, systematic_error
from .summary import RunStats, SummaryBuilder, summarize_file, write_summary
from .transport import Sender
from .transport.failures import classify
from .warmup import WARMUP_KIND, Unstreamed, Warmups, warmup_request

SIMULATOR_KEY = "sk-ant-simulated-key"

_T = TypeVar("_T")

# A request to launch and what the budget reserved for it.
_Launch = tuple[Request, float]


class StopReason(StrEnum):
    """Why a run ended: the one answer, recorded on the summary's total line as `stopped`."""

    COMPLETED = "completed"
    BUDGET = "budget"  # --max-cost: the next item could have passed it
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM
    OUTAGE = "outage"  # the API stayed unavailable past --max-outage; raised after the summary
    ERROR = "error"  # a run-level error (refused account, disk, a bug); raised after the summary


@dataclass
class RunReport:
    output: Path
    summary: Path | None
    total: int
    already_done: int
    ok: int = 0
    errors: int = 0
    stopped: StopReason = StopReason.COMPLETED
    spent_usd: float = 0.0
    fail_on_error_rate: float | None = None
    summary_lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.stopped is StopReason.INTERRUPTED

    @property
    def stopped_by_budget(self) -> bool:
        return self.stopped is StopReason.BUDGET

    @property
    def total_line(self) -> dict[str, Any]:
        return next((line for line in self.summary_lines if line.get("kind") == "total"), {})

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.stopped_by_budget:
            return ExitCode.BUDGET
        if self.stopped is StopReason.OUTAGE:
            return ExitCode.OUTAGE
        errors = self.total_line.get("errors") or 0
        if self.fail_on_error_rate is None:
            return ExitCode.ITEM_ERRORS if errors else ExitCode.OK
        items = self.total_line.get("items") or 0
        return ExitCode.ITEM_ERRORS if items and errors / items > self.fail_on_error_rate else ExitCode.OK


class Host:
    """What a run may do beyond its own files. This one is silent: a library caller's default.

    The command line's host logs to stderr, shows progress, prints the summary, and watches signals.
    """

    #: Stop cleanly on SIGINT / SIGTERM (in-flight items run again on resume).
    watch_signals: bool = False

    def log(self, message: str) -> None:
        """A line for the user: a warning, or what the run did to the output file."""

    def progress(self, total: int, done_before: int) -> Progress:
        return Progress(total, done_before)

    def interrupted(self) -> None:
        """Called once, at the first stop signal, after the run's own handlers are gone."""

    def finished(self, report: RunReport) -> None:
        """Called once the summary is written, before any run-level error is raised."""


def run_batch(config: RunConfig, *, host: Host | None = None) -> RunReport:
    """Run a batch to completion (or until it stops) in a new event loop, and return what happened."""
    # The cyclic collector otherwise keeps walking the SDK's tens of thousands of long-lived objects: its
    # full passes cost seconds of CPU over a big batch and pauses of hundreds of ms with thousands of
    # streams open. Freeze what exists now and collect young objects less eagerly, for this run only.
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(arun_batch(config, host=host))
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def arun_batch(config: RunConfig, *, host: Host | None = None) -> RunReport:
    """`run_batch` inside an event loop that is already running (a notebook, an async application)."""
    return await _Run(config, host or Host()).run()


# Open files a run needs besides its connections: results, lock, summary, standard streams, the resolver.
_SPARE_FILES = 64


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


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_INTERRUPTED = {
    "stream": "stopping (in-flight items run again on resume; Ctrl-C again to quit now)",
    "batches": "the batches keep running on the server, and the same command re-attaches to them",
}


class _Run:
    def __init__(self, config: RunConfig, host: Host) -> None:
        self.config = config
        self.host = host
        output = config.output
        self.output = output.results_path(config.input)
        self.summary_path: Path | None = output.summary or default_summary(self.output)
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if output.stdout and output.path is None:
            # Results only go to stdout; a scratch file still backs the lock-free bookkeeping and summary.
            self._scratch = tempfile.TemporaryDirectory(prefix="batchstream-")
            self.output = Path(self._scratch.name) / "results.jsonl"
            self.summary_path = output.summary
        self.pricer = Pricer(config.price_file, warn=lambda message: host.log(f"warning: {message}"))
        self.stopped = StopReason.COMPLETED
        self._stop_error: BatchstreamError | None = None
        self._input_done = False  # every request this run owns has been taken
        self._rng = random.Random(config.seed)
        # Set once items run (_run_items): they need the plan, and a run with nothing to do never makes them.
        self.budget: Budget | None = None
        self.writer: ResultWriter | None = None
        self.progress: Progress = Progress(0, 0)
        self.controller: LaunchController | None = None
        self.breaker = Breaker(config.retry.max_outage)
        self.held = HeldRows()
        self.sender: Sender | None = None
        self.secret: str | None = config.api_key
        self._counted = SummaryBuilder(self.pricer)
        self._dispatcher: asyncio.Task[Any] | None = None
        self._simulator: Any = None  # the SimulatorThread of a --simulate run, once started
        self.cache_plan: CachePlan | None = None  # with auto_cache, set by planning
        self.warmups: Warmups | None = None

    # -- planning: validate, compare with the checkpoint, lock -------------------------------------------

    def _check_model(self, model: str) -> None:
        if self.config.limits.max_cost is None:
            return
        if self.pricer.cost(model, {"input_tokens": 1, "output_tokens": 1}) is None:
            raise UsageError(
                f"--max-cost needs a price for every model, and none is known for {model!r} "
                "(give one with --price-file)"
            )

    def _prepare(self, stack: ExitStack) -> Plan:
        """Validate and plan without touching the output; then lock it and make it ready to append."""
        config = self.config
        while True:
            before = _stat(self.output)
            checkpoint = Checkpoint() if config.restart else load_checkpoint(self.output)
            counter = PrefixCounter() if config.auto_cache else None
            observe = counter.add if counter is not None else None
            plan = make_plan(config, checkpoint, self.output, self._check_model, observe)
            if counter is not None:
                self.cache_plan = counter.plan(config.limits)
            lock = OutputLock(self.output)
            lock.acquire()
            stack.callback(lock.release)
            if _stat(self.output) == before:
                break
            # Another run finished writing between our read and our lock: plan again on what it wrote.
            lock.release()
            stack.pop_all()
        if config.restart and self.output.exists():
            backup = self.output.with_name(self.output.name + ".bak")
            os.replace(self.output, backup)
            self.host.log(f"--restart: previous results moved to {backup}")
        if repair_tail(self.output):
            self.host.log(
                f"{self.output}: dropped a half-written last line (left by a crash); that item runs again"
            )
        if config.retry_errors and plan.recorded_errors:
            dropped = drop_statuses(self.output, {"error"})
            self.host.log(f"--retry-errors: {dropped} recorded error(s) will run again")
        for message in deprecation_warnings(plan.models):
            self.host.log(f"warning: {message}")
        return plan

    # -- the run ----------------------------------------------------------------------------------------

    async def run(self) -> RunReport:
        config = self.config
        with ExitStack() as stack:
            plan = self._prepare(stack)
            report = RunReport(
                self.output,
                self.summary_path,
                plan.total,
                plan.already_done,
                fail_on_error_rate=config.fail_on_error_rate,
            )
            if config.limits.max_cost is not None:
                self.budget = Budget(config.limits.max_cost, plan.spent_usd, self.pricer)
            started = asyncio.get_running_loop().time()
            self.progress = self.host.progress(plan.total, plan.already_done)
            writer = self.writer = ResultWriter(self.output, tee_stdout=config.output.stdout)
            earlier_bytes = writer.size
            try:
                if plan.already_done < plan.total:
                    via = self._run_batches if config.via == "batches" else self._run_items
                    await via(plan, stack)
            except BatchstreamError:
                raise
            except Exception as exc:  # not any one item's: the run stops, with its summary and results
                self._stop(InternalError.from_exception(exc, self.output, self.secret))
            finally:
                self.progress.close()
                writer.close()
            # This run's lines were counted as they were written, so the summary reads back only what
            # earlier runs wrote, before any reordering below, while those are still the file's first bytes.
            summary = (
                summarize_file(self.output, end=earlier_bytes, pricer=self.pricer)
                if earlier_bytes
                else SummaryBuilder(self.pricer)
            )
            summary.absorb(self._counted)
            report.ok, report.errors = self.progress.ok, self.progress.errors
            report.stopped = self.stopped
            if self.budget is not None:
                report.spent_usd = self.budget.spent_usd
            if config.output.ordered and self.stopped is StopReason.COMPLETED:
                rewrite_in_order(self.output, (request.id for request in requests(config)))
            elapsed = asyncio.get_running_loop().time() - started
            run = RunStats(elapsed, self.progress.ok + self.progress.errors, self.progress.output_tokens)
            report.summary_lines = self._write_summary(summary, run)
            self.host.finished(report)
        if self._scratch is not None:
            self._scratch.cleanup()
            report.output = Path("-")
        if self._stop_error is not None:
            raise self._stop_error
        return report

    def _summary_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"stopped": self.stopped.value}
        if self.config.limits.max_cost is not None:
            extra["budget_usd"] = self.config.limits.max_cost
        if self.config.shard is not None:
            extra["shard"] = str(self.config.shard)
        return extra

    def _write_summary(self, summary: SummaryBuilder, run: RunStats) -> list[dict[str, Any]]:
        lines = summary.lines(run=run, extra=self._summary_extra())
        if self.summary_path is not None:
            try:
                write_summary(self.summary_path, lines)
            except OSError as exc:
                self.host.log(f"warning: {self.summary_path}: cannot write the summary ({exc.strerror})")
        return lines

    async def _run_items(self, plan: Plan, stack: ExitStack) -> None:
        # The SDK is imported only once a request is due: a run with nothing to send never pays its ~1.3 s.
        # Its long-lived objects are frozen out of the collector's way like everything before (run_batch).
        from .transport.streaming import StreamingSender

        config = self.config
        # Loading the price table on the first reply instead would hold up every reply queued behind it.
        self.pricer.prepare(plan.models)
        gc.freeze()
        limits = config.limits
        # Each connection is an open file; with --simulate, so is the simulator's end of it.
        _ensure_open_files(limits.concurrency * (2 if config.simulate else 1) + _SPARE_FILES)
        base_url, api_key = self.endpoint(stack)
        self.controller = LaunchController(
            limits.concurrency, rpm=limits.rpm, itpm=limits.itpm, otpm=limits.otpm
        )
        sender = self.sender = StreamingSender(
            api_key=api_key,
            base_url=base_url,
            max_connections=limits.concurrency,
            stall_timeout=config.retry.stall_timeout,
            api_version=config.defaults.api_version,
        )
        self.secret = sender.api_key
        if self.cache_plan:
            self.warmups = Warmups(self._warm_up)
        background = [
            asyncio.create_task(self._sync_every_second()),
            asyncio.create_task(self._tick_progress()),
        ]
        try:
            await self.watched(self._dispatch(plan))
        finally:
            self._show_outage()  # an outage that ended since the last tick says so
            for row in self.held.release(outage=self.stopped is StopReason.OUTAGE):
                self.record(*row)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self.warmups is not None:
                await self.warmups.aclose()
            await asyncio.shield(sender.aclose())

    async def watched(self, work: Coroutine[Any, Any, _T]) -> _T | None:
        """Run `work` as the run's one task that a stop cancels (a signal, with the host's say-so, or
        `_stop`); its result, or None once stopped."""
        loop = asyncio.get_running_loop()
        watching = self.host.watch_signals and _add_signal_handlers(loop, self._on_signal)
        self._dispatcher = asyncio.create_task(work)
        try:
            return await self._dispatcher
        except asyncio.CancelledError:
            if self.stopped is StopReason.COMPLETED:  # not our own stop: our caller cancelled the run
                raise
            return None
        finally:
            if watching:
                _remove_signal_handlers(loop)

    def endpoint(self, stack: ExitStack) -> tuple[str | None, str | None]:
        """Where requests go and with which key: with --simulate, a simulator started once for the run."""
        config = self.config
        if not config.simulate:
            return config.base_url, config.api_key
        if self._simulator is None:
            from .simulator import SimulatorThread

            self._simulator = stack.enter_context(SimulatorThread(config.simulator))
        return self._simulator.base_url, config.api_key or SIMULATOR_KEY

    async def _run_batches(self, plan: Plan, stack: ExitStack) -> None:
        """`--via batches` (`batches/`); what a deadline canceled is then streamed."""
        from .batches.run import run_batches

        to_stream = await run_batches(self, plan, stack)
        if to_stream and self.stopped is StopReason.COMPLETED:
            self.host.log(
                f"--batch-deadline: streaming the {len(to_stream)} item(s) its batches did not answer"
            )
            await self._run_items(Plan(0.0, first=to_stream), stack)

    async def _dispatch(self, plan: Plan) -> None:
        """Up to `concurrency` workers, each running items one after another until none are left.

        A worker per slot, not a task per item: over a long batch, starting a task for every one of hundreds
        of thousands of items is a cost per item that buys nothing. Items are still taken from the input
        one at a time and in order (`_next_item`), some of them read ahead in the loop's idle moments
        (`ReadAhead`).
        """
        pending = ReadAhead(
            itertools.chain(plan.first, requests(self.config, plan.todo) if plan.todo else ()),
            limit=self.config.limits.concurrency,
            activity=lambda: self.progress.done,
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
        budget = self.budget
        if budget is not None:
            worst = budget.worst_case(request)
            if not await budget.reserve(worst):
                self.stopped = StopReason.BUDGET
                self.host.log(
                    f"budget: the next item could cost up to ${worst:.6f}, taking the spend "
                    f"past --max-cost ${budget.limit_usd:g} (spent ${budget.spent_usd:.6f}); "
                    "no more items are launched"
                )
                return None
        return request, worst

    async def _run_item(self, request: Request, reserved_usd: float) -> None:
        assert self.sender is not None and self.controller is not None and self.writer is not None
        record: ResultRecord | None = None
        try:
            cached = 0
            if self.cache_plan is not None:
                request, group = self.cache_plan.apply(request)
                if group is not None and self.warmups is not None:
                    await self.warmups.ready(request, group)
                    cached = group.tokens
            outcome = await self._attempts(request, self.sender, cached)
            if isinstance(outcome, Cancelled):
                return
            if isinstance(outcome, Fatal):
                self._stop(fatal_error(outcome.failure, self.output))
                return
            if isinstance(outcome, Unavailable):
                self._stop(outage_error(self.breaker, self.output), StopReason.OUTAGE)
                return
            if isinstance(outcome, Ok):
                try:
                    record = ok_record(
                        request,
                        outcome.sent,
                        outcome.attempts,
                        outcome.retries,
                        self.pricer,
                        content=self.config.output.content,
                    )
                except Exception as exc:  # the reply came and is paid for: that item fails, the run goes on
                    failure = classify(exc, secret=self.secret)
                    record = error_record(request, failure, outcome.attempts, outcome.retries)
                finished = [*self.held.succeeded(), (request, record)]
            else:
                record = error_record(request, outcome.failure, outcome.attempts, outcome.retries)
                finished = self.held.failed(request, record, outcome.failure)
                if self.held.tripped is not None:
                    self._stop(systematic_error(self.held.tripped, self.held.count, self.output))
            for item in finished:
                written = self.record(*item)
                if item[0] is request:
                    record = written
                if written is None:
                    return
        finally:
            if self.budget is not None:
                self.budget.settle(reserved_usd, record["cost_usd"] if record is not None else None)

    async def _attempts(self, request: Request, sender: Sender, cached_tokens: int = 0) -> Outcome:
        assert self.controller is not None
        return await run_attempts(
            request,
            sender,
            self.controller,
            self.breaker,
            self.config.retry,
            rng=self._rng,
            secret=self.secret,
            stopping=self._stopping,
            cached_tokens=cached_tokens,
        )

    async def _warm_up(self, item: Request, group: Group) -> None:
        """Send `group`'s warm-up and record it as a line of its own; a failed one only costs the group its
        head start (its items still write and read the cache themselves)."""
        assert self.sender is not None and self.controller is not None
        request = warmup_request(item, group)
        if request is None:
            return
        budget = self.budget
        worst = budget.worst_case(request) if budget is not None else 0.0
        if budget is not None and not budget.try_reserve(worst):
            self.host.log("budget: no room for a cache warm-up now; its group runs without it")
            return
        cost = None
        try:
            outcome = await self._attempts(request, Unstreamed(self.sender))
            if isinstance(outcome, Ok):
                record = ok_record(
                    request, outcome.sent, outcome.attempts, outcome.retries, self.pricer, content=False
                )
                record["kind"] = WARMUP_KIND
                if self._write(request, record) is not None:
                    self._counted.add(record)
                    cost = record["cost_usd"]
            elif isinstance(outcome, Failed | Fatal):
                failure = outcome.failure
                self.host.log(
                    f"warning: a cache warm-up failed ({failure.type}: {failure.message}); "
                    f"its {group.items} items run without it"
                )
        finally:
            if budget is not None:
                budget.settle(worst, cost)

    def record(self, request: Request, record: ResultRecord) -> ResultRecord | None:
        """Write an item's line and count it; what was written, or None when the run must stop."""
        written = self._write(request, record)
        if written is not None:
            self._counted.add(written)
            usage = written.get("usage") or {}
            self.progress.item_done(
                written["status"] == "ok", usage.get("output_tokens") or 0, written["cost_usd"]
            )
        return written

    def _write(self, request: Request, record: ResultRecord) -> ResultRecord | None:
        """Append `record`; what was written, or None when the run must stop (the disk failed)."""
        assert self.writer is not None
        try:
            self.writer.write(record)
        except OutputWriteError as exc:
            self._stop(exc)
            return None
        except Exception as exc:  # the line cannot be made (a value it cannot hold): that item fails
            failure = classify(exc, secret=self.secret)
            record = error_record(request, failure, record["attempts"], record["retries"])
            self.writer.write(record)
        return record

    async def _sync_every_second(self) -> None:
        assert self.writer is not None
        while True:
            await asyncio.sleep(1.0)
            try:
                await asyncio.to_thread(self.writer.sync)
            except OutputWriteError as exc:
                self._stop(exc)
                return

    async def _tick_progress(self) -> None:
        controller = self.controller
        assert controller is not None
        while True:
            await asyncio.sleep(1.0)
            self._show_outage()
            self.progress.paced_by = controller.paced_by
            self.progress.tick()

    def _show_outage(self) -> None:
        """Say when an outage begins and ends, and keep its note on the progress line while it lasts."""
        notice = self.breaker.notice()
        if notice is not None and self.progress.notice is None:
            self.host.log(
                f"{notice}: {self.breaker.describe_failure()}. Nothing new is launched until a probe "
                f"succeeds; the run stops after --max-outage {self.config.retry.max_outage:g} s"
            )
        elif notice is None and self.progress.notice is not None:
            self.host.log("API available again: resuming")
        self.progress.notice = notice

    @property
    def _launching(self) -> bool:
        """Whether items are still to be launched: input left, and no stop of any kind."""
        return not self._input_done and self.stopped is StopReason.COMPLETED

    def _stopping(self) -> bool:
        """Whether a stop cancels what is in flight (a budget stop lets it finish); true at once, before the
        cancel lands."""
        return self.stopped in (StopReason.INTERRUPTED, StopReason.ERROR, StopReason.OUTAGE)

    def _stop(self, error: BatchstreamError | None, reason: StopReason = StopReason.ERROR) -> None:
        """Stop launching and cancel what is in flight (it runs again on resume); the first reason wins."""
        if self.stopped is StopReason.COMPLETED or self.stopped is StopReason.BUDGET:
            self.stopped = reason
            self._stop_error = error
        if self._dispatcher is not None:
            self._dispatcher.cancel()

    def _on_signal(self) -> None:
        _remove_signal_handlers(asyncio.get_running_loop())
        self.host.log(f"interrupted: {_INTERRUPTED[self.config.via]}")
        self._stop(None, StopReason.INTERRUPTED)
        self.host.interrupted()


def _add_signal_handlers(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> bool:
    try:
        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, handler)
    except (NotImplementedError, RuntimeError):  # Windows, or not the main thread: no signals to watch
        return False
    return True


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for signum in _STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signum)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_size, info.st_mtime_ns
