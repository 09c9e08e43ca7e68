"""What a batch will cost, projected before any money is spent.

Input tokens come from the API's count_tokens endpoint when a key is at hand: it is free and exact for each
model. Without a key, or for an item the endpoint cannot count, the high-side guess that `run --max-cost`
reserves with stands in, labelled "approximate" wherever it shows, so nobody takes it for a count. Output
cannot be known in advance, so the cost is a range per model: no output at all (min) to every item writing
its full max_tokens (max), plus a "typical" figure priced at an earlier run's mean output when given.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import orjson

from .apifields import COUNT_TOKENS_FIELDS
from .cacherules import TTL_1H
from .caching import CachePlan, Group, plan_cache
from .errors import FatalAPIError, UsageError
from .inputs import Defaults, Request, deprecation_warnings, iter_requests
from .pricing import Pricer
from .runner import SIMULATOR_KEY
from .shard import Shard
from .summary import summarize_file
from .table import render
from .tokens import estimate_input_tokens
from .transport.failures import classify

__all__ = ["APPROXIMATE", "COUNT_TOKENS", "Estimate", "Projection", "estimate", "format_estimate"]

_log = logging.getLogger(__name__)

_COST_PLACES = Decimal("1e-9")  # as in the summary: summed costs rounded to 9 decimals, free of float noise
COUNT_TOKENS = "count_tokens"
APPROXIMATE = "approximate"


@dataclass(slots=True)
class Projection:
    """Sums for one model, or for all: tokens, and the cost at no output, typical output and max_tokens.

    A cost (or the typical output) is None as soon as one item had no price or no earlier mean to go by:
    a sum over only some of the items would pass for the whole.
    """

    items: int = 0
    approximated_items: int = 0
    input_tokens: int = 0
    output_tokens_typical: int | None = 0
    output_tokens_max: int = 0
    cost_min: Decimal | None = Decimal(0)
    cost_typical: Decimal | None = Decimal(0)
    cost_max: Decimal | None = Decimal(0)
    # What auto-caching takes off every figure: cheaper reads of shared prefixes, less one warm-up per group.
    cache_saving: Decimal | None = Decimal(0)
    cache_groups: int = 0

    @classmethod
    def blank(cls, typical: bool) -> Projection:
        """Without an earlier run to go by, the typical figures are None rather than a made-up 0."""
        return cls() if typical else cls(output_tokens_typical=None, cost_typical=None)

    def absorb(self, other: Projection) -> None:
        self.items += other.items
        self.approximated_items += other.approximated_items
        self.input_tokens += other.input_tokens
        self.output_tokens_typical = _plus(self.output_tokens_typical, other.output_tokens_typical)
        self.output_tokens_max += other.output_tokens_max
        self.cost_min = _plus(self.cost_min, other.cost_min)
        self.cost_typical = _plus(self.cost_typical, other.cost_typical)
        self.cost_max = _plus(self.cost_max, other.cost_max)
        self.cache_saving = _plus(self.cache_saving, other.cache_saving)
        self.cache_groups += other.cache_groups

    def source(self, method: str) -> str:
        """How the input tokens were obtained: the method tried, or "mixed" when it failed for some items."""
        if not self.approximated_items:
            return method
        return APPROXIMATE if self.approximated_items == self.items else "mixed"

    def as_fields(self, method: str) -> dict[str, Any]:
        return {
            "items": self.items,
            "input_tokens": self.input_tokens,
            "input_tokens_source": self.source(method),
            "approximated_items": self.approximated_items,
            "output_tokens_typical": self.output_tokens_typical,
            "output_tokens_max": self.output_tokens_max,
            "cost_usd_min": _usd(self.cost_min),
            "cost_usd_typical": _usd(self.cost_typical),
            "cost_usd_max": _usd(self.cost_max),
            "cache_groups": self.cache_groups,
            "cost_usd_min_cached": _usd(_minus(self.cost_min, self.cache_saving)),
            "cost_usd_typical_cached": _usd(_minus(self.cost_typical, self.cache_saving)),
            "cost_usd_max_cached": _usd(_minus(self.cost_max, self.cache_saving)),
        }


_N = TypeVar("_N", int, Decimal)


def _plus(total: _N | None, value: _N | None) -> _N | None:
    return None if total is None or value is None else total + value


def _minus(cost: Decimal | None, saving: Decimal | None) -> Decimal | None:
    return None if cost is None or saving is None else cost - saving


def _usd(cost: Decimal | None) -> float | None:
    return None if cost is None else float(cost.quantize(_COST_PLACES))


@dataclass(frozen=True, slots=True)
class Estimate:
    """The projection for an input (or one shard of it), by model and in total."""

    input: Path
    shard: Shard | None
    previous: Path | None
    method: str  # COUNT_TOKENS or APPROXIMATE: how input tokens were obtained (see Projection.source)
    models: dict[str, Projection]
    total: Projection
    count_errors: dict[str, int] = field(default_factory=dict)  # count_tokens failures by error type
    first_count_error: str | None = None
    batch: bool = False  # priced at the Message Batches API's rate (`--via batches`)

    def as_json(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "shard": None if self.shard is None else str(self.shard),
            "previous": None if self.previous is None else str(self.previous),
            "input_tokens_source": self.total.source(self.method),
            "count_errors": self.count_errors,
            "models": [{"model": model, **p.as_fields(self.method)} for model, p in self.models.items()],
            "total": self.total.as_fields(self.method),
            "via": "batches" if self.batch else "stream",
        }

    def to_json(self) -> str:
        return orjson.dumps(self.as_json()).decode()


class _Projector:
    """Prices each item as its input-token count arrives, keeping only per-model sums."""

    def __init__(
        self, pricer: Pricer, mean_outputs: dict[str, float] | None, cache: CachePlan, *, batch: bool
    ) -> None:
        self._pricer = pricer
        self._batch = batch
        self._mean_outputs = mean_outputs
        self._cache = cache
        self._warmed: set[bytes] = set()
        self.models: dict[str, Projection] = {}

    def add(self, request: Request, counted: int | None) -> None:
        model: str = request.params["model"]
        max_tokens: int = request.params["max_tokens"]
        projection = self.models.get(model)
        if projection is None:
            projection = self.models[model] = Projection.blank(self._mean_outputs is not None)
        input_tokens = estimate_input_tokens(request.params) if counted is None else counted
        projection.items += 1
        projection.approximated_items += int(counted is None)
        projection.input_tokens += input_tokens
        projection.output_tokens_max += max_tokens
        projection.cost_min = _plus(projection.cost_min, self._cost(model, input_tokens, 0))
        projection.cost_max = _plus(projection.cost_max, self._cost(model, input_tokens, max_tokens))
        mean = None if self._mean_outputs is None else self._mean_outputs.get(model)
        typical = None if mean is None else min(round(mean), max_tokens)
        projection.output_tokens_typical = _plus(projection.output_tokens_typical, typical)
        typical_cost = None if typical is None else self._cost(model, input_tokens, typical)
        projection.cost_typical = _plus(projection.cost_typical, typical_cost)
        _, group = self._cache.apply(request)
        if group is not None:
            projection.cache_saving = _plus(projection.cache_saving, self._saving(model, group, input_tokens))

    def _saving(self, model: str, group: Group, input_tokens: int) -> Decimal | None:
        """What caching saves on one item of `group` (its prefix read at the cache price), less the group's
        one warm-up write the first time the group is met."""
        tokens = min(group.tokens, input_tokens)
        plain = self._pricer.cost(model, {"input_tokens": tokens}, batch=self._batch)
        read = self._pricer.cost(model, {"cache_read_input_tokens": tokens}, batch=self._batch)
        if plain is None or read is None:
            return None
        saving = Decimal(repr(plain)) - Decimal(repr(read))
        if group.key not in self._warmed:
            self._warmed.add(group.key)
            self.models[model].cache_groups += 1
            split = {f"ephemeral_{group.ttl}_input_tokens": tokens}
            usage = {"cache_creation_input_tokens": tokens, "cache_creation": split}
            write = self._pricer.cost(model, usage, batch=self._batch)
            saving -= Decimal(repr(write or 0.0))
        return saving

    def _cost(self, model: str, input_tokens: int, output_tokens: int) -> Decimal | None:
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        cost = self._pricer.cost(model, usage, batch=self._batch)
        return None if cost is None else Decimal(repr(cost))


class _TokenCounter:
    """count_tokens for each request, a bounded number at once.

    An item the endpoint cannot count falls back to the approximation (and is counted as such); a refused
    key stops everything, since every other call would be refused the same way.
    """

    def __init__(self, api_key: str, base_url: str | None, api_version: str | None = None) -> None:
        self._key = api_key
        # The SDK's own retries suffice: count_tokens is one small call, not a stream that can break midway.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=60.0,
            default_headers={"anthropic-version": api_version} if api_version else None,
        )
        self.errors: Counter[str] = Counter()
        self.first_error: str | None = None

    async def count(self, request: Request) -> int | None:
        params = request.params
        # The optional fields travel in extra_body exactly as the line gives them, as `run` sends them.
        extra = {key: value for key, value in params.items() if key in COUNT_TOKENS_FIELDS}
        kwargs: dict[str, Any] = {"model": params["model"], "messages": params["messages"]}
        try:
            if request.betas:
                counted: Any = await self._client.beta.messages.count_tokens(
                    **kwargs, betas=list(request.betas), extra_body=extra or None
                )
            else:
                counted = await self._client.messages.count_tokens(**kwargs, extra_body=extra or None)
        except anthropic.APIError as exc:
            failure = classify(exc, secret=self._key)
            if failure.cause == "authentication":
                raise FatalAPIError(
                    f"the API rejected the API key while counting tokens (HTTP {failure.status} "
                    f"{failure.type}: {failure.message}); nothing was spent. Check ANTHROPIC_API_KEY, or "
                    "unset it for an approximate estimate."
                ) from None
            self.errors[failure.type] += 1
            if self.first_error is None:
                self.first_error = f"{request.id}: {failure.type}: {failure.message}"
            return None
        return int(counted.input_tokens)

    async def count_all(
        self, requests: Iterable[Request], concurrency: int, done: Callable[[Request, int | None], None]
    ) -> None:
        slots = asyncio.Semaphore(concurrency)

        async def count_one(request: Request) -> None:
            try:
                done(request, await self.count(request))
            finally:
                slots.release()

        try:
            async with self._client, asyncio.TaskGroup() as tasks:
                for request in requests:
                    await slots.acquire()
                    tasks.create_task(count_one(request))
        except* FatalAPIError as group:
            raise group.exceptions[0] from None


def estimate(
    input_path: str | os.PathLike[str],
    defaults: Defaults | None = None,
    *,
    shard: Shard | None = None,
    previous: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    simulate: bool = False,
    concurrency: int = 8,
    price_file: str | os.PathLike[str] | None = None,
    warn: Callable[[str], None] | None = None,
    batch: bool = False,
) -> Estimate:
    """Project the cost of `input_path` (its `shard`, if given) as `run` with the same defaults would send it.

    With `api_key` (or `simulate`, which counts on a built-in simulator) input tokens are counted by the
    API's count_tokens; without, they are approximated. `previous` is a results file whose mean output per
    ok item, by model, prices the typical figure; `batch` prices at the Message Batches API's rate. Raises
    InputError for bad input, as `run` would.
    """
    defaults = defaults or Defaults()
    warn = warn or _log.warning
    pricer = Pricer(price_file, warn=warn)
    mean_outputs = None if previous is None else _mean_outputs(Path(previous))

    def requests() -> Iterator[Request]:
        for request in iter_requests(input_path, defaults):
            if shard is None or shard.owns(request.id):
                yield request

    # As `run` would group them: one pass over the file first, prefixes only (caching.py); on the Batches
    # path every group written for an hour (batches/priming.py). The pass reads and checks every line, so
    # bad input stops the estimate before the first count_tokens call, as it stops `run` before a request.
    cache = plan_cache(requests())
    projector = _Projector(pricer, mean_outputs, cache.with_ttl(TTL_1H) if batch else cache, batch=batch)

    key = api_key or (SIMULATOR_KEY if simulate else None)
    counter: _TokenCounter | None = None
    if key is None:
        for request in requests():
            projector.add(request, None)
    else:
        with ExitStack() as stack:
            if simulate:
                from .simulator import SimulatorThread

                base_url = stack.enter_context(SimulatorThread()).base_url
            counter = _TokenCounter(key, base_url, defaults.api_version)
            asyncio.run(counter.count_all(requests(), concurrency, projector.add))
    for message in deprecation_warnings(projector.models):
        warn(message)
    if mean_outputs is not None:
        for model in sorted(projector.models.keys() - mean_outputs.keys()):
            warn(f"{previous} has no ok item of model {model!r}: no typical figure for it")
    total = Projection.blank(mean_outputs is not None)
    for projection in projector.models.values():
        total.absorb(projection)
    return Estimate(
        input=Path(input_path),
        shard=shard,
        previous=None if previous is None else Path(previous),
        method=APPROXIMATE if counter is None else COUNT_TOKENS,
        models=dict(sorted(projector.models.items())),
        total=total,
        count_errors={} if counter is None else dict(sorted(counter.errors.items())),
        first_count_error=None if counter is None else counter.first_error,
        batch=batch,
    )


def _mean_outputs(previous: Path) -> dict[str, float]:
    """Mean output tokens per ok item, by model: output_tokens / ok, as error lines carry no usage."""
    try:
        lines = summarize_file(previous).lines()
    except (OSError, ValueError) as exc:
        raise UsageError(f"--previous {previous}: {exc}") from None
    return {
        line["model"]: line["output_tokens"] / line["ok"]
        for line in lines
        if line["kind"] == "model" and line["model"] is not None and line["ok"]
    }


def format_estimate(result: Estimate) -> str:
    """Human table for stderr; `Estimate.as_json` is the machine-readable form."""
    method = result.method
    where = f"{result.input}" + ("" if result.shard is None else f" (shard {result.shard})")
    if method == COUNT_TOKENS:
        how = "input tokens counted by the API (count_tokens)"
    else:
        how = (
            "input tokens APPROXIMATE (a guess on the high side from the prompt's size; set "
            "ANTHROPIC_API_KEY to count them exactly with the free count_tokens endpoint)"
        )
    text = [f"estimate for {where}: {result.total.items:,} items; {how}"]
    typical = result.previous is not None
    header = ["model", "items", "input tok", "input", "max output tok", "cost min"]
    header += ["cost typical", "cost max"] if typical else ["cost max"]
    rows = []
    labelled = [*result.models.items(), ("total", result.total)]
    for label, projection in labelled:
        row = [label, f"{projection.items:,}", f"{projection.input_tokens:,}", projection.source(method)]
        row += [f"{projection.output_tokens_max:,}", _cost_cell(projection.cost_min)]
        if typical:
            row.append(_cost_cell(projection.cost_typical))
        rows.append([*row, _cost_cell(projection.cost_max)])
    text += render(header, rows, left={0, 3})
    notes = ["cost min: no output at all", "cost max: every item writes its full max_tokens"]
    if result.batch:
        notes.append("at the Message Batches API's price (half the streaming price)")
    if typical:
        notes.append(f"cost typical: each model's mean output per ok item in {result.previous}")
    text.append("; ".join(notes))
    total = result.total
    if total.cache_groups:
        cached = [_cost_cell(_minus(cost, total.cache_saving)) for cost in (total.cost_min, total.cost_max)]
        noun = "prefix" if total.cache_groups == 1 else "prefixes"
        text.append(
            f"with auto-caching ({total.cache_groups:,} shared {noun}, one warm-up "
            f"each): cost min {cached[0]}, cost max {cached[1]}; --no-auto-cache pays the figures above"
        )
    if result.count_errors:
        failed = sum(result.count_errors.values())
        text.append(
            f"count_tokens failed for {failed:,} item(s), whose input tokens are approximate "
            f"(first: {result.first_count_error})"
        )
    return "\n".join(text)


def _cost_cell(cost: Decimal | None) -> str:
    return "n/a" if cost is None else f"${_usd(cost):.6f}"
