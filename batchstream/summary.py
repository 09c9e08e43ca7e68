"""Cost and throughput summary of a results file, as JSONL lines and as a short table for stderr.

The summary covers the whole results file (which may span resumed runs), while rates such as items/s describe
only the current invocation, so they come in separately as RunStats.
"""

from __future__ import annotations

import math
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import orjson

from .atomic import atomic_write
from .pricing import Pricer
from .results import read_results
from .table import render

if TYPE_CHECKING:
    from .record import ResultRecord

__all__ = ["RunStats", "SummaryBuilder", "format_table", "summarize_file", "write_summary"]

_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_COST_PLACES = Decimal("1e-9")  # rounding the summed costs to 9 decimals removes float noise
_PENDING_COSTS = 4096  # distinct costs a model holds before it sums them, so memory stays flat


@dataclass(frozen=True, slots=True)
class RunStats:
    """This invocation only: the results file may also hold items from earlier, resumed runs."""

    wall_time_s: float
    items: int
    output_tokens: int


@dataclass(slots=True)
class _Sum:
    """An exact sum of float costs, so a total does not depend on item order."""

    done: Decimal = Decimal(0)
    # Costs not in `done` yet, with how often each occurred: a model's items share few distinct costs, and a
    # Decimal per item took a third of the time a big file's summary took.
    pending: dict[float, int] = field(default_factory=dict)

    def add(self, cost: float) -> None:
        pending = self.pending
        pending[cost] = pending.get(cost, 0) + 1
        if len(pending) >= _PENDING_COSTS:
            self.done = self.exact()
            pending.clear()

    def exact(self) -> Decimal:
        return self.done + sum((Decimal(repr(cost)) * n for cost, n in self.pending.items()), Decimal(0))


@dataclass(slots=True)
class _ModelCounts:
    """Running sums for one model; constant size, whatever the number of items."""

    items: int = 0
    ok: int = 0
    errors: int = 0
    priced: int = 0
    unpriced: int = 0
    warmups: int = 0  # cache warm-up lines: their tokens and cost count, they are no items
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TOKEN_FIELDS, 0))
    cost: _Sum = field(default_factory=_Sum)
    # What the same lines would have cost with no prompt caching (and no warm-ups); None: not known.
    uncached: _Sum | None = None

    def absorb(self, other: _ModelCounts) -> None:
        self.items += other.items
        self.ok += other.ok
        self.errors += other.errors
        self.priced += other.priced
        self.unpriced += other.unpriced
        self.warmups += other.warmups
        for name in _TOKEN_FIELDS:
            self.tokens[name] += other.tokens[name]
        self.cost.done += other.cost.exact()
        if self.uncached is not None and other.uncached is not None:
            self.uncached.done += other.uncached.exact()
        else:
            self.uncached = None

    def as_fields(self) -> dict[str, Any]:
        # Null only when nothing was priceable but something was billed: 0.0 would read as "free".
        known = not (self.priced == 0 and self.unpriced)
        cost = float(self.cost.exact().quantize(_COST_PLACES)) if known else None
        saved = None
        if known and not self.unpriced and self.uncached is not None:
            saved = float((self.uncached.exact() - self.cost.exact()).quantize(_COST_PLACES))
        return {
            "items": self.items,
            "ok": self.ok,
            "errors": self.errors,
            **self.tokens,
            "cost_usd": cost,
            "unpriced_items": self.unpriced,
            "warmups": self.warmups,
            "cache_saved_usd": saved,
        }


class SummaryBuilder:
    """Accumulates result lines; memory grows only by two floats per ok item (for the percentiles)."""

    def __init__(self, pricer: Pricer | None = None) -> None:
        """With a `pricer`, each line is also priced as if nothing had been cached, for "cache_saved_usd"."""
        self._pricer = pricer
        self._models: dict[str | None, _ModelCounts] = {}
        self._latencies = array("d")
        self._ttfts = array("d")
        self._attempts = 0
        self._retries: Counter[str] = Counter()
        self._errors_by_type: Counter[str] = Counter()

    def add(self, result: ResultRecord) -> None:
        """Count one result line (read from a file, so any field may be missing or malformed)."""
        # Runs once per line of a results file that may hold 10^5+ lines: lookups are kept to one each.
        get = result.get
        model = get("model")
        counts = self._models.get(model)
        if counts is None:
            counts = self._models[model] = self._new_counts()
        warmup = get("kind") == "warmup"
        if warmup:
            counts.warmups += 1
        else:
            self._count_item(counts, get)
        usage = get("usage")
        has_usage = type(usage) is dict or isinstance(usage, Mapping)
        if has_usage:
            tokens = counts.tokens
            for name in _TOKEN_FIELDS:
                value = usage.get(name)
                if type(value) is int:  # malformed counters count as 0 rather than fail a long run's summary
                    tokens[name] += value
        cost = get("cost_usd")
        if _is_number(cost):
            counts.priced += 1
            counts.cost.add(cost)
            if counts.uncached is not None and not warmup:
                self._add_uncached(counts.uncached, model, usage, cost)
        elif has_usage:
            counts.unpriced += 1
        attempts = get("attempts")
        if type(attempts) is int:
            self._attempts += attempts
        retries = get("retries")
        if retries and isinstance(retries, Mapping):
            for cause, n in retries.items():
                if type(n) is int:
                    self._retries[str(cause)] += n

    def _new_counts(self) -> _ModelCounts:
        return _ModelCounts(uncached=_Sum() if self._pricer else None)

    def _count_item(self, counts: _ModelCounts, get: Callable[[str], Any]) -> None:
        counts.items += 1
        if get("status") == "ok":
            counts.ok += 1
            latency = get("latency_s")
            if _is_number(latency):
                self._latencies.append(latency)
            ttft = get("ttft_s")
            if _is_number(ttft):
                self._ttfts.append(ttft)
        else:
            counts.errors += 1
            error = get("error")
            error_type = error.get("type") if isinstance(error, Mapping) else None
            self._errors_by_type[error_type if isinstance(error_type, str) else "unknown"] += 1

    def _add_uncached(self, total: _Sum, model: Any, usage: Any, cost: float) -> None:
        """Add what the line would have cost uncached: its own cost when nothing was cached."""
        cached = isinstance(usage, Mapping) and (
            usage.get("cache_read_input_tokens") or usage.get("cache_creation_input_tokens")
        )
        uncached = self._pricer.cost_without_cache(str(model), usage) if cached and self._pricer else None
        total.add(cost if uncached is None else uncached)

    def absorb(self, other: SummaryBuilder) -> None:
        """Count `other`'s lines too: they must be of other items (no id in both)."""
        for model, counts in other._models.items():
            mine = self._models.get(model)
            if mine is None:
                mine = self._models[model] = self._new_counts()
            mine.absorb(counts)
        self._latencies.extend(other._latencies)
        self._ttfts.extend(other._ttfts)
        self._attempts += other._attempts
        self._retries.update(other._retries)
        self._errors_by_type.update(other._errors_by_type)

    def lines(
        self, *, run: RunStats | None = None, extra: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """One line per model (sorted by model, a missing model last), then the total line."""
        total = self._new_counts()
        out: list[dict[str, Any]] = []
        for model in sorted(self._models, key=lambda m: (m is None, m or "")):
            counts = self._models[model]
            total.absorb(counts)
            out.append({"kind": "model", "model": model, **counts.as_fields()})
        latencies = sorted(self._latencies)
        ttfts = sorted(self._ttfts)
        wall = run.wall_time_s if run is not None else None
        total_line: dict[str, Any] = {
            "kind": "total",
            **total.as_fields(),
            "wall_time_s": wall,
            "items_per_s": run.items / wall if run is not None and wall else None,
            "output_tokens_per_s": run.output_tokens / wall if run is not None and wall else None,
            "latency_p50_s": _percentile(latencies, 0.50),
            "latency_p95_s": _percentile(latencies, 0.95),
            "ttft_p50_s": _percentile(ttfts, 0.50),
            "ttft_p95_s": _percentile(ttfts, 0.95),
            "attempts": self._attempts,
            "retries": dict(sorted(self._retries.items())),
            "errors_by_type": dict(sorted(self._errors_by_type.items())),
        }
        if extra:
            clash = total_line.keys() & extra.keys()
            if clash:
                raise ValueError(f"extra summary fields would overwrite computed ones: {sorted(clash)}")
            total_line.update(extra)
        out.append(total_line)
        return out


def _is_number(value: object) -> TypeGuard[int | float]:
    if type(value) is float:  # what JSON numbers with a fraction parse to: the common case, tested first
        return math.isfinite(value)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """numpy's default "linear" method, lerp form included, so figures match numpy.percentile exactly."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    t = position - low
    a, b = sorted_values[low], sorted_values[high]
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _iter_records(path: Path, end: int | None) -> Iterator[tuple[int, ResultRecord]]:
    """(line number, record) of the lines before byte `end`; a bad line is forgiven only last, where a crash
    mid-write leaves one, and anywhere else raises BadResultLine, a ValueError naming the line."""
    for number, record, _raw, _offset in read_results(path, bad_lines="last", end=end):
        if record is not None:
            yield number, record


def summarize_file(
    path: str | os.PathLike[str], *, end: int | None = None, pricer: Pricer | None = None
) -> SummaryBuilder:
    """Summarize a results file, or its lines before byte `end`; when an id was retried on several lines
    (resumed runs), the last line counts.

    One streaming pass when every id is on one line, as runs leave it; memory stays at one entry per id
    instead of one record per id. If an id turns up again (say, files joined by hand), the file is counted
    again in two passes that find each id's last line first.
    """
    path = Path(path)
    builder = SummaryBuilder(pricer)
    seen: set[object] = set()
    for _lineno, record in _iter_records(path, end):
        item_id = record.get("id")
        if isinstance(item_id, str | int):
            if item_id in seen:
                return _summarize_last_lines(path, end, pricer)
            seen.add(item_id)
        builder.add(record)
    return builder


def _summarize_last_lines(path: Path, end: int | None, pricer: Pricer | None) -> SummaryBuilder:
    last_line: dict[object, int] = {}
    for lineno, record in _iter_records(path, end):
        item_id = record.get("id")
        if isinstance(item_id, str | int):
            last_line[item_id] = lineno
    builder = SummaryBuilder(pricer)
    for lineno, record in _iter_records(path, end):
        item_id = record.get("id")
        if not isinstance(item_id, str | int) or last_line[item_id] == lineno:
            builder.add(record)
    return builder


def write_summary(path: str | os.PathLike[str], lines: list[dict[str, Any]]) -> None:
    """Replace the summary atomically, so a reader or a crash never sees a half-written file."""
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    with atomic_write(path) as fh:
        fh.write(data)


def format_table(lines: list[dict[str, Any]]) -> str:
    """Human summary for stderr: the JSONL lines stay the machine-readable record."""
    header = ("model", "items", "ok", "errors", "input tok", "output tok", "cost")
    rows = []
    total: Mapping[str, Any] = {}
    for line in lines:
        if line.get("kind") == "model":
            rows.append(_table_row(str(line["model"]) if line["model"] is not None else "(none)", line))
        elif line.get("kind") == "total":
            total = line
    if total:
        rows.append(_table_row("total", total))
    text = render(header, rows)
    if total:
        text.append(
            f"wall time {_fmt(total.get('wall_time_s'), '.1f', 's')}"
            f"  items/s {_fmt(total.get('items_per_s'), '.2f')}"
            f"  output tok/s {_fmt(total.get('output_tokens_per_s'), '.1f')}"
        )
        text.append(
            f"latency p50 {_fmt(total.get('latency_p50_s'), '.2f', 's')}"
            f" p95 {_fmt(total.get('latency_p95_s'), '.2f', 's')}"
            f"  TTFT p50 {_fmt(total.get('ttft_p50_s'), '.2f', 's')}"
            f" p95 {_fmt(total.get('ttft_p95_s'), '.2f', 's')}"
        )
        cache = _cache_line(total)
        if cache:
            text.append(cache)
        for label, key in (("retries", "retries"), ("errors", "errors_by_type")):
            counts = total.get(key) or {}
            if counts:
                text.append(f"{label}: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    return "\n".join(text)


def _cache_line(total: Mapping[str, Any]) -> str | None:
    """The prompt cache's part, when it had one: tokens read and written, warm-ups, and what it saved."""
    read = total.get("cache_read_input_tokens") or 0
    written = total.get("cache_creation_input_tokens") or 0
    if not (read or written):
        return None
    warmups = total.get("warmups") or 0
    plural = "s" * (warmups != 1)
    line = f"prompt cache: {read:,} tokens read, {written:,} written ({warmups} warm-up{plural})"
    saved = total.get("cache_saved_usd")
    if saved is not None:
        line += f"; saved ${saved:.6f} against no caching" if saved >= 0 else f"; cost ${-saved:.6f} more"
    return line


def _table_row(label: str, line: Mapping[str, Any]) -> tuple[str, ...]:
    cost = line.get("cost_usd")
    cost_cell = "n/a" if cost is None else f"${cost:.6f}"
    if line.get("unpriced_items"):
        cost_cell += f" (+{line['unpriced_items']} unpriced)"
    return (
        label,
        f"{line['items']:,}",
        f"{line['ok']:,}",
        f"{line['errors']:,}",
        f"{line['input_tokens']:,}",
        f"{line['output_tokens']:,}",
        cost_cell,
    )


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"
