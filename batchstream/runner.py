"""run_batch: the life of a run, from an input file to a results file and a summary.

Validate and plan first (nothing is sent and no file is touched on bad input), lock the output, then hand
the items left to do to one of two paths: `dispatch.py` streams them (workers taking items in input order),
`batches/` submits them as Message Batches. Either way each finished item goes through `_Run.record`,
appended to the results file at once: that file is the checkpoint a later run resumes from. This module holds
the lifecycle, the signals and the one reason a run stops (`stops.StopReason`); what an item's line says is
`record.py`'s, what a failure means is `transport/failures.py`'s.

The library is quiet: it prints nothing, reads no environment variable and installs no signal handler
unless its `Host` says so. The command line's host shows progress, logs and the summary table.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import tempfile
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .budget import Budget
from .caching import CachePlan, PrefixCounter
from .config import RunConfig, default_summary
from .dispatch import stream_items
from .errors import (
    BatchstreamError,
    ExitCode,
    InternalError,
    OutputWriteError,
    UsageError,
)
from .eventloop import new_event_loop
from .inputs import Request, deprecation_warnings
from .plan import Plan, make_plan, requests
from .pricing import Pricer
from .progress import Progress
from .record import ResultRecord, error_record
from .results import (
    Checkpoint,
    OutputLock,
    ResultWriter,
    drop_statuses,
    load_checkpoint,
    repair_tail,
    rewrite_in_order,
)
from .stops import StopReason

__all__ = ["SIMULATOR_KEY", "Host", "RunReport", "StopReason", "arun_batch", "run_batch"]
from .summary import RunStats, SummaryBuilder, summarize_file, write_summary
from .transport.failures import classify

SIMULATOR_KEY = "sk-ant-simulated-key"

_T = TypeVar("_T")

# A request to launch and what the budget reserved for it.
_Launch = tuple[Request, float]


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
        # Set once items run: they need the plan, and a run with nothing to do never makes them.
        self.budget: Budget | None = None
        self.writer: ResultWriter | None = None
        self.progress: Progress = Progress(0, 0)
        self.secret: str | None = config.api_key  # the key the sender uses, kept out of every message
        self._counted = SummaryBuilder(self.pricer)
        self._dispatcher: asyncio.Task[Any] | None = None
        self._simulator: Any = None  # the SimulatorThread of a --simulate run, once started
        self.cache_plan: CachePlan | None = None  # with auto_cache, set by planning

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
                    if config.via == "batches":
                        await self._run_batches(plan, stack)
                    else:
                        await stream_items(self, plan, stack)
            except BatchstreamError:
                raise
            except Exception as exc:  # not any one item's: the run stops, with its summary and results
                self.stop(InternalError.from_exception(exc, self.output, self.secret))
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
            await stream_items(self, Plan(0.0, first=to_stream), stack)

    def record(self, request: Request, record: ResultRecord) -> ResultRecord | None:
        """Write a line and count it; what was written, or None when the run must stop (the disk failed)."""
        written = self._write(request, record)
        if written is None:
            return None
        self._counted.add(written)
        if "kind" not in written:  # a cache warm-up is in the summary, but it is not an item
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
            self.stop(exc)
            return None
        except Exception as exc:  # the line cannot be made (a value it cannot hold): that item fails
            failure = classify(exc, secret=self.secret)
            record = error_record(request, failure, record["attempts"], record["retries"])
            self.writer.write(record)
        return record

    def stopping(self) -> bool:
        """Whether a stop cancels what is in flight (a budget stop lets it finish); true at once, before the
        cancel lands."""
        return self.stopped in (StopReason.INTERRUPTED, StopReason.ERROR, StopReason.OUTAGE)

    def stop(self, error: BatchstreamError | None, reason: StopReason = StopReason.ERROR) -> None:
        """Stop launching and cancel what is in flight (it runs again on resume); the first reason wins."""
        if self.stopped is StopReason.COMPLETED or self.stopped is StopReason.BUDGET:
            self.stopped = reason
            self._stop_error = error
        if self._dispatcher is not None:
            self._dispatcher.cancel()

    def _on_signal(self) -> None:
        _remove_signal_handlers(asyncio.get_running_loop())
        self.host.log(f"interrupted: {_INTERRUPTED[self.config.via]}")
        self.stop(None, StopReason.INTERRUPTED)
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
