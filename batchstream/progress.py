"""Progress on stderr: a tqdm bar on a terminal, plain periodic lines in CI logs, nothing with --quiet.

It is told about finished items only (never per event), so its cost does not grow with reply length.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Counts finished items; subclasses decide how (and whether) to show them."""

    def __init__(self, total: int, done_before: int) -> None:
        self.total = total
        self.done_before = done_before
        self.ok = 0
        self.errors = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.started = time.monotonic()
        # What holds launches back now ("ITPM", "concurrency", ...), set by the run once a second.
        self.paced_by: str | None = None
        # Why nothing is moving, while that lasts (an outage: "API unavailable since ..."); set by the run.
        self.notice: str | None = None

    @property
    def done(self) -> int:
        return self.done_before + self.ok + self.errors

    def item_done(self, ok: bool, output_tokens: int, cost_usd: float | None) -> None:
        if ok:
            self.ok += 1
        else:
            self.errors += 1
        self.output_tokens += output_tokens
        self.cost_usd += cost_usd or 0.0
        self._show()

    def _show(self) -> None:
        """Nothing to show by default (--quiet)."""

    def note(self, status: str, details: list[str]) -> None:
        """What is being waited for (`--via batches`: the batches' counts), in all and in `details`."""

    def tick(self) -> None:
        """Called every second, so a batch of slow items still shows signs of life."""

    def close(self) -> None:
        """Nothing to close by default."""

    def _rates(self) -> tuple[float, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (self.ok + self.errors) / elapsed, self.output_tokens / elapsed

    def _eta(self) -> str:
        items_per_s, _ = self._rates()
        left = self.total - self.done
        if items_per_s <= 0 or left <= 0:
            return "-"
        return _duration(left / items_per_s)


class BarProgress(Progress):
    def __init__(self, total: int, done_before: int, stream: TextIO) -> None:
        super().__init__(total, done_before)
        self._bar = tqdm(total=total, initial=done_before, file=stream, unit="item", dynamic_ncols=True)
        self._last_postfix = 0.0

    def _show(self) -> None:
        now = time.monotonic()
        if now - self._last_postfix >= 0.5:
            self._last_postfix = now
            _, tokens_per_s = self._rates()
            self._bar.set_postfix_str(
                f"ok={self.ok} err={self.errors} out={tokens_per_s:,.0f} tok/s ${self.cost_usd:.4f}"
                + _paced(self.paced_by),
                refresh=False,
            )
        self._bar.update(1)

    def tick(self) -> None:
        self._bar.set_description_str(self.notice or "", refresh=False)
        self._bar.refresh()

    def note(self, status: str, details: list[str]) -> None:
        self._bar.set_description_str(status, refresh=False)

    def close(self) -> None:
        self._bar.close()


# Batches shown one line each in a note; the rest are counted.
_NOTED_DETAILS = 10


class LineProgress(Progress):
    def __init__(self, total: int, done_before: int, stream: TextIO, interval: float) -> None:
        super().__init__(total, done_before)
        self._stream = stream
        self._interval = interval
        self._last = time.monotonic()

    def _show(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._print()

    tick = _show

    def note(self, status: str, details: list[str]) -> None:
        self._stream.write(
            "".join(
                f"batchstream: {line}\n"
                for line in [f"{status}, ETA {self._eta()}", *details[:_NOTED_DETAILS]]
            )
            + (
                f"batchstream: ... and {len(details) - _NOTED_DETAILS} more\n"
                if len(details) > _NOTED_DETAILS
                else ""
            )
        )
        self._stream.flush()

    def _print(self) -> None:
        _, tokens_per_s = self._rates()
        notice = f"; {self.notice}" if self.notice else ""
        self._stream.write(
            f"batchstream: {self.done}/{self.total} done ({self.ok} ok, {self.errors} errors this run), "
            f"{tokens_per_s:,.0f} output tok/s, ${self.cost_usd:.4f}, ETA {self._eta()}{notice}"
            f"{_paced(self.paced_by)}\n"
        )
        self._stream.flush()

    def close(self) -> None:
        if self.ok + self.errors:
            self._print()


def make_progress(
    total: int, done_before: int, *, quiet: bool, stream: TextIO | None = None, interval: float = 10.0
) -> Progress:
    stream = stream or sys.stderr
    if quiet:
        return Progress(total, done_before)
    if stream.isatty():
        return BarProgress(total, done_before, stream)
    return LineProgress(total, done_before, stream, interval)


def _paced(paced_by: str | None) -> str:
    return f", paced by {paced_by}" if paced_by else ""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
