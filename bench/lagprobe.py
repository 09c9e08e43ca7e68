"""Event-loop lag of a real batchstream run, measured from inside the same loop.

`batchstream.runner.run_batch` is called exactly as a library user would call it, on the loop it would use
(uvloop where installed); a wrapper around its loop factory adds one probe task to that loop: it sleeps 10 ms
at a time and records by how much each sleep overshot. Any stretch in which batchstream's own code holds the
loop shows up as overshoot. Prints one JSON object (lag statistics and the run's counts) on stdout.

With `--display bar`, stderr is a pseudo-terminal, so the run shows its tqdm bar, and every call batchstream
makes into its progress display is timed on the loop thread's CPU clock: the display's share of the run's CPU,
measured directly rather than as the difference between two runs (which is within run-to-run noise).

Run: python -m bench.lagprobe INPUT -o OUTPUT --base-url URL -c N [--display bar]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

import batchstream.runner
from batchstream import Limits, Output, RunConfig, run_batch
from batchstream.console import ConsoleHost
from batchstream.eventloop import new_event_loop
from batchstream.progress import Progress, make_progress

INTERVAL_S = 0.010

_overshoots: list[float] = []
_marks: list[float] = []


async def _probe() -> None:
    clock = time.perf_counter
    while True:
        before = clock()
        await asyncio.sleep(INTERVAL_S)
        after = clock()
        _overshoots.append(after - before - INTERVAL_S)
        _marks.append(after)


def _probing_loop() -> asyncio.AbstractEventLoop:
    """The run's own loop, with the probe as its first task."""
    loop = new_event_loop()
    loop.call_soon(lambda: loop.create_task(_probe()))
    return loop


_display_cpu = [0.0]


def _timed(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Any:
        before = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            _display_cpu[0] += time.thread_time() - before

    return timed


class _BarOnAPty(ConsoleHost):
    """The command line's host, with its progress bar drawn on a pseudo-terminal (drained by a thread) and
    every call to it timed."""

    def __init__(self) -> None:
        super().__init__(quiet=False, progress_interval=10.0)
        parent, child = os.openpty()
        self._terminal = os.fdopen(child, "w")
        threading.Thread(target=lambda: _drain(parent), daemon=True).start()

    def progress(self, total: int, done_before: int) -> Progress:
        progress = _timed(make_progress)(total, done_before, quiet=False, stream=self._terminal)
        for name in ("item_done", "tick", "close"):
            setattr(progress, name, _timed(getattr(progress, name)))
        return progress


def _drain(fd: int) -> None:
    while os.read(fd, 65536):
        pass


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lagprobe")
    parser.add_argument("input", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--display", choices=("none", "bar"), default="none")
    args = parser.parse_args()
    batchstream.runner.new_event_loop = _probing_loop  # type: ignore[assignment]
    started = time.perf_counter()
    cpu_started = time.process_time()
    host = _BarOnAPty() if args.display == "bar" else ConsoleHost(quiet=True, progress_interval=10.0)
    report = run_batch(
        RunConfig(
            input=args.input,
            output=Output(path=args.output),
            base_url=args.base_url,
            api_key=os.environ.get("ANTHROPIC_API_KEY"),
            limits=Limits(concurrency=args.concurrency),
        ),
        host=host,
    )
    finished = time.perf_counter()
    run_cpu = time.process_time() - cpu_started
    worst = max(range(len(_overshoots)), key=_overshoots.__getitem__) if _overshoots else None
    print(
        orjson.dumps(
            {
                "ok": report.ok,
                "errors": report.errors,
                "run_s": finished - started,
                "run_cpu_s": run_cpu,
                "display_cpu_s": _display_cpu[0],
                "samples": len(_overshoots),
                "max_lag_ms": 1000 * max(_overshoots, default=0.0),
                "p99_lag_ms": 1000 * _percentile(_overshoots, 0.99),
                "p50_lag_ms": 1000 * _percentile(_overshoots, 0.50),
                "over_50ms": sum(1 for lag in _overshoots if lag > 0.050),
                "max_at_s": None if worst is None else _marks[worst] - started,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
