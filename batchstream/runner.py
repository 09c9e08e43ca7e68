"""run_batch: the whole job, from an input file to a results file and a summary.

Structure: validate everything first (nothing is sent and no file is touched on bad input), then stream
the input a second time and launch one task per item still to do, never more than `concurrency` alive,
so memory follows concurrency and not the size of the input. Each finished item is appended to the
results file at once; that file is the checkpoint a later run resumes from.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import random
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .budget import Budget
from .deadline import Deadline
from .errors import (
    BatchstreamError,
    ExitCode,
    FatalAPIError,
    OutputWriteError,
    ResumeMismatchError,
    UsageError,
)
from .eventloop import new_event_loop
from .inputs import Defaults, Request, Unchanged, deprecation_warnings, iter_requests
from .limiter import LaunchController
from .markdown import append_github_step_summary, first_errors, markdown_summary
from .pricing import PriceFileError, Pricer
from .progress import Progress, make_progress
from .readahead import ReadAhead
from .results import (
    Checkpoint,
    OutputLock,
    ResultWriter,
    drop_statuses,
    load_checkpoint,
    repair_tail,
    rewrite_in_order,
)
from .retry import Backoff, Failure, classify
from .shard import Shard
from .summary import RunStats, SummaryBuilder, format_table, summarize_file, write_summary
from .tokens import estimate_input_tokens

if TYPE_CHECKING:
    from .simulator import SimulatorConfig
    from .stream import StreamOutcome, Transport

SIMULATOR_KEY = "sk-ant-simulated-key"

_Item = TypeVar("_Item", bound=Request | Unchanged)
# A request to launch and what the budget reserved for it.
_Launch = tuple[Request, float]


@dataclass
class RunConfig:
    """Everything one run needs; the CLI fills it from its options, library users build it directly."""

    input: Path
    output: Path | None = None
    summary: Path | None = None
    defaults: Defaults = field(default_factory=Defaults)
    concurrency: int = 16
    api_key: str | None = None
    base_url: str | None = None
    simulate: bool = False
    simulator: SimulatorConfig | None = None
    retry_errors: bool = False
    restart: bool = False
    price_file: Path | None = None
    max_attempts: int = 8
    backoff: Backoff = field(default_factory=Backoff)
    stall_timeout: float = 60.0
    timeout: float = 600.0
    transport: Transport = "direct"
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    content: bool = True
    quiet: bool = False
    progress_interval: float = 10.0
    handle_signals: bool = False
    seed: int | None = None
    max_cost: float | None = None
    shard: Shard | None = None
    fail_on_error_rate: float | None = None
    ordered: bool = False
    stdout: bool = False


@dataclass
class RunReport:
    output: Path
    summary: Path | None
    total: int
    already_done: int
    ok: int = 0
    errors: int = 0
    interrupted: bool = False
    stopped_by_budget: bool = False
    spent_usd: float = 0.0
    fail_on_error_rate: float | None = None
    summary_lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_line(self) -> dict[str, Any]:
        return next((line for line in self.summary_lines if line.get("kind") == "total"), {})

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.stopped_by_budget:
            return ExitCode.BUDGET
        errors = self.total_line.get("errors") or 0
        if self.fail_on_error_rate is None:
            return ExitCode.ITEM_ERRORS if errors else ExitCode.OK
        items = self.total_line.get("items") or 0
        return ExitCode.ITEM_ERRORS if items and errors / items > self.fail_on_error_rate else ExitCode.OK

    @property
    def stopped(self) -> str:
        if self.interrupted:
            return "interrupted"
        return "budget" if self.stopped_by_budget else "completed"


def default_output(input_path: Path) -> Path:
    return _replace_jsonl(input_path, ".results.jsonl")


def default_summary(output: Path) -> Path:
    return _replace_jsonl(output, ".summary.jsonl")


def _replace_jsonl(path: Path, suffix: str) -> Path:
    """`in.jsonl` -> `in{suffix}`; a name without `.jsonl` keeps its whole name before the suffix."""
    return path.with_name(path.name.removesuffix(".jsonl") + suffix)


def run_batch(config: RunConfig, *, log: Callable[[str], None] | None = None) -> RunReport:
    """Run a batch to completion (or interruption) and return what happened."""
    run = _Run(config, log or _log_stderr)
    # The cyclic collector otherwise keeps walking the SDK's tens of thousands of long-lived objects: its
    # full passes cost seconds of CPU over a big batch and pauses of hundreds of ms with thousands of
    # streams open. Freeze what exists now and collect young objects less eagerly, for this run only.
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)
    try:
        return anyio.run(run.run, backend="asyncio", backend_options={"loop_factory": new_event_loop})
    finally:
        run.restore_signal_handlers()
        gc.set_threshold(*threshold)
        gc.unfreeze()


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


def _quit_at_once(_signum: int, _frame: object) -> None:
    os._exit(ExitCode.INTERRUPTED)


def _log_stderr(message: str) -> None:
    print(f"batchstream: {message}", file=sys.stderr, flush=True)


class _LineMask:
    """The set of input line numbers still to run, one byte per line of the file."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, line: int) -> None:
        if line >= len(self._bits):
            self._bits.extend(bytes(max(line + 1 - len(self._bits), len(self._bits))))
        self._bits[line] = 1

    def __contains__(self, line: object) -> bool:
        return isinstance(line, int) and line < len(self._bits) and self._bits[line] == 1

    def __bool__(self) -> bool:
        return bool(self._bits)


@dataclass
class _Plan:
    spent_usd: float  # what the recorded results cost, for --max-cost
    # The lines to run: the first wave's requests as planning read them (memory bounded by --concurrency,
    # and not read a second time, which would hold up the first wave), then the rest by line number.
    first: list[Request] = field(default_factory=list)
    todo: _LineMask = field(default_factory=_LineMask)
    models: set[str] = field(default_factory=set)  # of the lines to run
    total: int = 0
    already_done: int = 0
    recorded_errors: int = 0

    def to_run(self, item: Request | Unchanged, model: str, wave: int) -> None:
        self.models.add(model)
        # In file order: the first wave ends at the first line it cannot take.
        if isinstance(item, Request) and len(self.first) < wave and not self.todo:
            self.first.append(item)
        else:
            self.todo.add(item.line)


class _Run:
    def __init__(self, config: RunConfig, log: Callable[[str], None]) -> None:
        self.config = config
        self.log = log
        self.output = config.output or default_output(config.input)
        self.summary_path: Path | None = config.summary or default_summary(self.output)
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if config.stdout and config.output is None:
            if config.restart or config.retry_errors:
                raise UsageError(
                    "-o - keeps no checkpoint, so there is nothing to resume, restart or retry: "
                    "give --checkpoint PATH as well"
                )
            # Results only go to stdout; a scratch file still backs the lock-free bookkeeping and summary.
            self._scratch = tempfile.TemporaryDirectory(prefix="batchstream-")
            self.output = Path(self._scratch.name) / "results.jsonl"
            self.summary_path = config.summary
        self.api_key = self._api_key()
        try:
            self.pricer = Pricer(config.price_file, warn=lambda message: self.log(f"warning: {message}"))
        except PriceFileError as exc:
            raise UsageError(str(exc)) from None
        self._stop_error: BaseException | None = None
        self.interrupted = False
        self._signal_handlers: dict[int, Any] = {}
        self._rng = random.Random(config.seed)

    def _api_key(self) -> str:
        key = self.config.api_key or os.environ.get("ANTHROPIC_API_KEY")
        if self.config.simulate:
            return key or SIMULATOR_KEY
        if not key:
            raise UsageError(
                "no API key: set ANTHROPIC_API_KEY (export ANTHROPIC_API_KEY=sk-ant-...) "
                "or run against the built-in simulator with --simulate"
            )
        return key

    # -- planning: validate, compare with the checkpoint, lock -------------------------------------------

    def _requests(self, only_lines: _LineMask | None = None) -> Iterator[Request]:
        """The input's requests that this run is responsible for (its shard, if any)."""
        return self._owned(iter_requests(self.config.input, self.config.defaults, only_lines=only_lines))

    def _owned(self, items: Iterator[_Item]) -> Iterator[_Item]:
        shard = self.config.shard
        return items if shard is None else (item for item in items if shard.owns(item.id))

    def _plan(self, checkpoint: Checkpoint) -> _Plan:
        plan = _Plan(checkpoint.cost_usd)
        mismatched: list[str] = []
        priced: set[str] = set()
        # Lines unchanged since their result was recorded come as Unchanged, not validated again; with
        # nothing recorded there is nothing to look up.
        recorded = checkpoint.line_hash if len(checkpoint) else None
        wave = self.config.concurrency
        for item in self._owned(iter_requests(self.config.input, self.config.defaults, recorded=recorded)):
            plan.total += 1
            model = item.model if isinstance(item, Unchanged) else item.params["model"]
            if self.config.max_cost is not None and model not in priced:
                self._require_price(model)
                priced.add(model)
            seen = checkpoint.get(item.id)
            if seen is None:
                plan.to_run(item, model, wave)
                continue
            if isinstance(item, Request) and seen.request_hash != item.request_hash:
                mismatched.append(item.id)
            elif seen.error and self.config.retry_errors:
                plan.to_run(item, model, wave)
            else:
                plan.already_done += 1
            if seen.error:
                plan.recorded_errors += 1
        if mismatched:
            shown = ", ".join(repr(item) for item in mismatched[:10])
            more = f" and {len(mismatched) - 10} more" if len(mismatched) > 10 else ""
            raise ResumeMismatchError(
                f"{self.output}: {len(mismatched)} recorded item(s) no longer match their input line "
                f"(prompt or parameters changed): {shown}{more}. Nothing was sent. To start over, add "
                "--restart (the old results are kept as a .bak file); to keep them, write to another "
                "file with -o."
            )
        return plan

    def _require_price(self, model: str) -> None:
        if self.pricer.cost(model, {"input_tokens": 1, "output_tokens": 1}) is None:
            raise UsageError(
                f"--max-cost needs a price for every model, and none is known for {model!r} "
                "(give one with --price-file)"
            )

    def _prepare(self, stack: ExitStack) -> _Plan:
        """Validate and plan without touching the output; then lock it and make it ready to append."""
        while True:
            before = _stat(self.output)
            plan = self._plan(Checkpoint() if self.config.restart else load_checkpoint(self.output))
            lock = OutputLock(self.output)
            lock.acquire()
            stack.callback(lock.release)
            if _stat(self.output) == before:
                break
            # Another run finished writing between our read and our lock: plan again on what it wrote.
            lock.release()
            stack.pop_all()
        if self.config.restart and self.output.exists():
            backup = self.output.with_name(self.output.name + ".bak")
            os.replace(self.output, backup)
            self.log(f"--restart: previous results moved to {backup}")
        if repair_tail(self.output):
            self.log(
                f"{self.output}: dropped a half-written last line (left by a crash); that item runs again"
            )
        if self.config.retry_errors and plan.recorded_errors:
            dropped = drop_statuses(self.output, {"error"})
            self.log(f"--retry-errors: {dropped} recorded error(s) will run again")
        for message in deprecation_warnings(plan.models):
            self.log(f"warning: {message}")
        return plan

    # -- running ----------------------------------------------------------------------------------------

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
            self.budget = (
                None if config.max_cost is None else Budget(config.max_cost, plan.spent_usd, self.pricer)
            )
            self.stopped_by_budget = self._launching_stopped = False
            started = anyio.current_time()
            progress = make_progress(
                plan.total, plan.already_done, quiet=config.quiet, interval=config.progress_interval
            )
            self.writer = ResultWriter(self.output, tee_stdout=config.stdout)
            earlier_bytes = self.writer.size
            # This run's lines are counted as they are written, so the summary reads back only what earlier
            # runs wrote: that reading comes after the last reply, where it adds to the run's wall time.
            self._counted = SummaryBuilder()
            try:
                if plan.already_done < plan.total:
                    await self._run_items(plan, progress, stack)
            finally:
                progress.close()
                self.writer.close()
            # Before any reordering below, while the earlier runs' lines are still the file's first bytes.
            summary = summarize_file(self.output, end=earlier_bytes) if earlier_bytes else SummaryBuilder()
            summary.absorb(self._counted)
            report.ok, report.errors = progress.ok, progress.errors
            report.interrupted = self.interrupted
            report.stopped_by_budget = self.stopped_by_budget
            if self.budget is not None:
                report.spent_usd = self.budget.spent_usd
            if config.ordered and report.stopped == "completed" and self._stop_error is None:
                rewrite_in_order(self.output, (request.id for request in self._requests()))
            run = RunStats(
                anyio.current_time() - started, progress.ok + progress.errors, progress.output_tokens
            )
            report.summary_lines = self._write_summary(summary, run, self._summary_extra(report))
        if self._scratch is not None:
            self._scratch.cleanup()
            report.output = Path("-")
        if self._stop_error is not None:
            raise self._stop_error
        return report

    def _summary_extra(self, report: RunReport) -> dict[str, Any]:
        extra: dict[str, Any] = {"stopped": "error" if self._stop_error is not None else report.stopped}
        if self.config.max_cost is not None:
            extra["budget_usd"] = self.config.max_cost
        if self.config.shard is not None:
            extra["shard"] = str(self.config.shard)
        return extra

    async def _run_items(self, plan: _Plan, progress: Progress, stack: ExitStack) -> None:
        # The SDK is imported only once a request is due: a run with nothing to send never pays its ~1.3 s.
        # Its long-lived objects are frozen out of the collector's way like everything before (run_batch).
        from .stream import StreamClient

        # Loading the price table on the first reply instead would hold up every reply queued behind it.
        self.pricer.prepare(plan.models)
        gc.freeze()
        config = self.config
        # Each connection is an open file; with --simulate, so is the simulator's end of it.
        _ensure_open_files(config.concurrency * (2 if config.simulate else 1) + _SPARE_FILES)
        base_url = config.base_url
        if config.simulate:
            from .simulator import SimulatorThread

            simulator = stack.enter_context(SimulatorThread(config.simulator))
            base_url = simulator.base_url
        self.progress = progress
        self.controller = LaunchController(
            config.concurrency, rpm=config.rpm, itpm=config.itpm, otpm=config.otpm
        )
        self.client = StreamClient(
            api_key=self.api_key,
            base_url=base_url,
            max_connections=config.concurrency,
            stall_timeout=config.stall_timeout,
            transport=config.transport,
            api_version=config.defaults.api_version,
        )
        try:
            async with anyio.create_task_group() as outer:
                self._outer = outer.cancel_scope
                if config.handle_signals:
                    outer.start_soon(self._watch_signals)
                outer.start_soon(self._sync_every_second)
                outer.start_soon(self._tick_progress)
                await self._dispatch(plan)
                outer.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.client.aclose()

    async def _dispatch(self, plan: _Plan) -> None:
        """Up to `--concurrency` workers, each running items one after another until none are left.

        A worker per slot, not a task per item: over a long batch, starting a task for every one of hundreds
        of thousands of items is a cost per item that buys nothing. Items are still taken from the input
        one at a time and in order (`_next_item`), some of them read ahead in the loop's idle moments
        (`ReadAhead`).

        The workers are plain asyncio tasks in asyncio's own task group: an anyio task also gets a cancel
        scope, an event and a wrapper coroutine, 12 µs more per worker, which holds up the first wave by
        12 ms at 1,000 workers. A stop still reaches them: cancelling the run's scope cancels this task,
        and the task group then cancels its tasks and waits for them.
        """
        requests = ReadAhead(
            itertools.chain(plan.first, self._requests(plan.todo) if plan.todo else ()),
            limit=self.config.concurrency,
            activity=lambda: self.progress.done,
        )
        taking = asyncio.Lock()
        async with asyncio.TaskGroup() as workers:
            for _ in range(self.config.concurrency):
                if self._launching_stopped:
                    break
                workers.create_task(self._work(requests, taking), name="batchstream-worker")
                # A turn for the new worker, which takes and launches its first item before this loop goes
                # on: starting thousands of requests in one go would hold the loop for as long as building
                # them all takes, and every open stream would wait. A bare asyncio yield: anyio's checkpoint
                # looks up the running library first, every time.
                await asyncio.sleep(0)
            # Only now: reading ahead while the first wave launches would hold that wave up.
            workers.create_task(requests.fill(), name="batchstream-read-ahead")

    async def _work(self, requests: ReadAhead[Request], taking: asyncio.Lock) -> None:
        while True:
            async with taking:
                item = await self._next_item(requests)
            if item is None:
                requests.close()
                # Nothing is left to launch: connections close as they go idle, not all at the exit.
                self.client.drain()
                return
            await self._run_item(*item)

    async def _next_item(self, requests: Iterator[Request]) -> _Launch | None:
        """The next request and its budget reservation, or None once nothing more is to be launched.

        Only one worker at a time is in here (the `taking` lock), so items are launched in file order and
        the budget turns down exactly one item before launching stops, as with a single dispatcher.
        """
        if self._launching_stopped or self._outer.cancel_called:
            return None
        request = next(requests, None)
        if request is None:
            self._launching_stopped = True
            return None
        worst = 0.0
        budget = self.budget
        if budget is not None:
            worst = budget.worst_case(request)
            if not await budget.reserve(worst):
                self._launching_stopped = self.stopped_by_budget = True
                self.log(
                    f"budget: the next item could cost up to ${worst:.6f}, taking the spend "
                    f"past --max-cost ${budget.limit_usd:g} (spent ${budget.spent_usd:.6f}); "
                    "no more items are launched"
                )
                return None
        return request, worst

    async def _sync_every_second(self) -> None:
        while True:
            await anyio.sleep(1.0)
            try:
                await anyio.to_thread.run_sync(self.writer.sync)
            except OutputWriteError as exc:
                self._stop(exc)
                return

    async def _tick_progress(self) -> None:
        while True:
            await anyio.sleep(1.0)
            self.progress.tick()

    def _stop(self, error: BaseException | None) -> None:
        if error is not None and self._stop_error is None:
            self._stop_error = error
        self._outer.cancel()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
            async for _signum in signals:
                self.interrupted = True
                self.log(
                    "interrupted: stopping (in-flight items run again on resume; Ctrl-C again to quit now)"
                )
                self._stop(None)
                break
        # The stop goes on without this receiver (streams closing, the summary being written), and a second
        # signal must quit at once through all of it. A plain handler does that on any loop; on uvloop, the
        # KeyboardInterrupt of Python's default handler can be lost in the loop's callbacks and the
        # process hangs instead (MagicStack/uvloop#335).
        for signum in _STOP_SIGNALS:
            self._signal_handlers.setdefault(signum, signal.signal(signum, _quit_at_once))

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._signal_handlers.items():
            signal.signal(signum, handler)

    async def _run_item(self, request: Request, reserved_usd: float) -> None:
        record: dict[str, Any] | None = None
        try:
            record = await self._attempts(request)
            if record is None:
                return
            try:
                self.writer.write(record)
            except OutputWriteError as exc:
                self._stop(exc)
                return
            self._counted.add(record)
            usage = record.get("usage") or {}
            self.progress.item_done(
                record["status"] == "ok", usage.get("output_tokens") or 0, record["cost_usd"]
            )
        finally:
            if self.budget is not None:
                self.budget.settle(reserved_usd, record["cost_usd"] if record is not None else None)

    async def _attempts(self, request: Request) -> dict[str, Any] | None:
        config = self.config
        controller = self.controller
        input_estimate = estimate_input_tokens(request.params)
        max_tokens = int(request.params.get("max_tokens") or 0)
        retries: dict[str, int] = {}
        attempt = 0
        while True:
            attempt += 1
            ticket = await controller.acquire(input_estimate, max_tokens)
            if self._outer.cancel_called:  # a fatal error stopped the run while this one waited its turn
                controller.release()
                return None
            try:
                # Not an anyio cancel scope, which costs several times as much; both cancel the same way, so
                # a stop still gets through.
                with Deadline(config.timeout) as deadline:
                    outcome = await self.client.stream(request)
            except BatchstreamError as exc:  # the set-up is unusable (a proxy it cannot reach, say)
                controller.release()
                self._stop(exc)
                return None
            except Exception as exc:
                controller.release()
                if isinstance(exc, TimeoutError) and deadline.expired():
                    failure = Failure(
                        "timeout",
                        True,
                        False,
                        None,
                        "timeout",
                        f"no reply within --timeout {config.timeout:g}s",
                    )
                else:
                    failure = classify(exc, secret=self.api_key)
            else:
                usage = outcome.message.get("usage") or {}
                controller.release(usage.get("output_tokens") or 0)
                controller.on_success(outcome.headers, ticket)
                return self._ok_record(request, outcome, attempt, retries)
            if failure.fatal:
                self._stop(_fatal_error(failure, self.output))
                return None
            if failure.throttled:
                controller.on_throttle(failure.retry_after, failure.headers, ticket)
            if not failure.retryable or attempt >= config.max_attempts:
                return self._error_record(request, failure, attempt, retries)
            retries[failure.cause] = retries.get(failure.cause, 0) + 1
            await anyio.sleep(config.backoff.delay(attempt, failure.retry_after, self._rng))

    def _ok_record(
        self, request: Request, outcome: StreamOutcome, attempts: int, retries: dict[str, int]
    ) -> dict[str, Any]:
        message = outcome.message
        model = message.get("model") or request.params.get("model")
        usage = message.get("usage")
        content = message.get("content") or []
        record: dict[str, Any] = {
            "id": request.id,
            "status": "ok",
            "text": "".join(block.get("text", "") for block in content if block.get("type") == "text"),
            "stop_reason": message.get("stop_reason"),
            "stop_sequence": message.get("stop_sequence"),
            "model": model,
            "usage": usage,
            "cost_usd": self.pricer.cost(model, usage),
            "latency_s": round(outcome.latency_s, 4),
            "ttft_s": None if outcome.ttft_s is None else round(outcome.ttft_s, 4),
            "attempts": attempts,
            "retries": retries,
            "request_id": outcome.request_id,
            "error": None,
        }
        if message.get("stop_details") is not None:
            record["stop_details"] = message["stop_details"]
        thinking = [block.get("thinking", "") for block in content if block.get("type") == "thinking"]
        if thinking:
            record["thinking"] = "".join(thinking)
        tool_calls = [
            {"id": block.get("id"), "name": block.get("name"), "input": block.get("input")}
            for block in content
            if block.get("type") == "tool_use"
        ]
        if tool_calls:
            record["tool_calls"] = tool_calls
        if self.config.content:
            record["content"] = content
        return self._finish_record(request, record)

    def _error_record(
        self, request: Request, failure: Failure, attempts: int, retries: dict[str, int]
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": request.id,
            "status": "error",
            "text": None,
            "stop_reason": None,
            "stop_sequence": None,
            "model": request.params.get("model"),
            "usage": None,
            "cost_usd": None,
            "latency_s": None,
            "ttft_s": None,
            "attempts": attempts,
            "retries": retries,
            "request_id": failure.request_id,
            "error": failure.as_record(),
        }
        return self._finish_record(request, record)

    @staticmethod
    def _finish_record(request: Request, record: dict[str, Any]) -> dict[str, Any]:
        record["request_hash"] = request.request_hash
        record["line_hash"] = request.line_hash
        if request.has_meta:
            record["meta"] = request.meta
        return record

    def _write_summary(
        self, summary: SummaryBuilder, run: RunStats, extra: dict[str, Any]
    ) -> list[dict[str, Any]]:
        lines = summary.lines(run=run, extra=extra)
        if self.summary_path is not None:
            try:
                write_summary(self.summary_path, lines)
            except OSError as exc:
                self.log(f"warning: {self.summary_path}: cannot write the summary ({exc.strerror})")
        if lines and os.environ.get("GITHUB_STEP_SUMMARY"):
            try:
                append_github_step_summary(markdown_summary(lines, first_errors(self.output)))
            except OutputWriteError as exc:
                self.log(f"warning: {exc}")
        if not self.config.quiet and lines:
            print(format_table(lines), file=sys.stderr, flush=True)
        return lines


def _fatal_error(failure: Failure, output: Path) -> FatalAPIError:
    what = {
        "authentication": "the API rejected the API key",
        "permission": "the API key is not allowed to do this",
        "billing": "the account cannot pay for more requests",
    }[failure.cause]
    return FatalAPIError(
        f"{what} (HTTP {failure.status} {failure.type}: {failure.message}). Every remaining item would fail "
        f"the same way, so the run stopped. Results already written to {output} are kept; fix the cause "
        "and run the same command again to resume."
    )


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_size, info.st_mtime_ns
