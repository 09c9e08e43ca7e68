"""USD cost of one Messages API call, from genai-prices or a user price file.

genai-prices' own ``extract_usage`` + ``calc_price`` cost ~80 µs per call (extraction alone ~25 µs): too
slow for a per-item hot path over hundreds of thousands of items. So per-model rates are resolved through
genai-prices once and cached, and each call only splits the usage into Anthropic's billing buckets and
prices them the way genai-prices' ``calc_unit_price`` does (the same tiers, every bucket's exact product).

The arithmetic is on integers, not Decimals: each price is turned once into a whole number of units of
one common fraction of a dollar, so a call's exact total is one integer over one fixed denominator, and
Python divides those two with correct rounding. That is the float of the exact sum, which is what
``float()`` of genai-prices' Decimal total is too (its products and quotients are exact at these sizes),
for half the cost or less: a price is worked out for every item, twice with --max-cost.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from .errors import PriceFileError

__all__ = ["PriceFileError", "Pricer"]

_log = logging.getLogger(__name__)

_Price = Decimal | TieredPrices

_MTOK = 1_000_000
# The Message Batches API bills every token at half the price of the same request sent on its own:
# https://docs.anthropic.com/en/docs/build-with-claude/batch-processing#pricing
BATCH_PRICE = 0.5
_KCOUNT = 1_000

# Price-file field -> multiple of `input` used when the field is omitted (Anthropic's published multipliers).
_DEFAULT_INPUT_MULTIPLIERS = {
    "cache_write": Decimal("1.25"),
    "cache_write_1h": Decimal("2"),
    "cache_read": Decimal("0.1"),
}
_REQUIRED_FIELDS = ("input", "output")
_ALLOWED_FIELDS = frozenset({*_REQUIRED_FIELDS, *_DEFAULT_INPUT_MULTIPLIERS, "web_search_per_1k"})
_DEFAULT_WEB_SEARCH_PER_1K = Decimal(10)

# genai-prices keys this module bills; a model priced by any other key is refused rather than under-charged.
_GENAI_PRICE_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "cache_read_mtok",
        "web_searches_kcount",
    }
)


@dataclass(frozen=True, slots=True)
class _Rates:
    """Per-bucket prices: USD per million tokens, web searches USD per thousand."""

    input: _Price
    output: _Price
    cache_write_5m: _Price
    cache_write_1h: _Price
    cache_read: _Price
    web_search_per_1k: _Price
    tiered: bool
    # Set from the prices above, per bucket in `bill`'s order: (tier start, whole units of 1 / `_denominator`
    # USD per token or search), highest tier first. The base price starts at -1: any prompt is past it.
    _denominator: int = field(init=False, repr=False, compare=False)
    _units: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        buckets = [
            [(start, _ratio(price, per)) for start, price in _tiers(bucket)]
            for bucket, per in (
                (self.input, _MTOK),
                (self.cache_write_5m, _MTOK),
                (self.cache_write_1h, _MTOK),
                (self.cache_read, _MTOK),
                (self.output, _MTOK),
                (self.web_search_per_1k, _KCOUNT),
            )
        ]
        denominator = math.lcm(*(den for tiers in buckets for _, (_, den) in tiers))
        units = tuple(
            tuple((start, num * (denominator // den)) for start, (num, den) in tiers) for tiers in buckets
        )
        object.__setattr__(self, "_denominator", denominator)
        object.__setattr__(self, "_units", units)

    def bill(self, usage: Mapping[str, Any]) -> float:
        """Bill like the API: input_tokens excludes cache reads/writes, which are separate counters."""
        input_tokens = _count(usage, "input_tokens")
        cache_write = _count(usage, "cache_creation_input_tokens")
        cache_read = _count(usage, "cache_read_input_tokens")
        split = usage.get("cache_creation")
        cache_write_1h = 0
        if isinstance(split, Mapping):
            cache_write_1h = _count(split, "ephemeral_1h_input_tokens")
            if usage.get("cache_creation_input_tokens") is None:
                cache_write = _count(split, "ephemeral_5m_input_tokens") + cache_write_1h
            elif cache_write_1h > cache_write:
                raise ValueError(
                    f"cache_creation.ephemeral_1h_input_tokens ({cache_write_1h}) exceeds "
                    f"cache_creation_input_tokens ({cache_write})"
                )
        tool_use = usage.get("server_tool_use")
        web_searches = _count(tool_use, "web_search_requests") if isinstance(tool_use, Mapping) else 0
        # Tiers switch on the whole prompt, cached parts included, as genai-prices and Anthropic do.
        prompt = input_tokens + cache_write + cache_read if self.tiered else 0
        counts = (
            input_tokens,
            cache_write - cache_write_1h,
            cache_write_1h,
            cache_read,
            _count(usage, "output_tokens"),
            web_searches,
        )
        total = 0
        for tiers, count in zip(self._units, counts, strict=True):
            if count:
                # As calc_unit_price: the highest tier the whole prompt is past prices every unit.
                for start, price in tiers:
                    if prompt > start:
                        total += count * price
                        break
        return total / self._denominator


def _tiers(price: _Price) -> list[tuple[int, Decimal]]:
    """(start, price) for each tier, highest first, then the base price from -1."""
    if isinstance(price, TieredPrices):
        return [*((tier.start, tier.price) for tier in reversed(price.tiers)), (-1, price.base)]
    return [(-1, price)]


def _ratio(price: Decimal, per: int) -> tuple[int, int]:
    """`price` / `per` as an exact fraction (numerator, denominator)."""
    num, den = price.as_integer_ratio()
    return num, den * per


def _count(usage: Mapping[str, Any], key: str) -> int:
    """A missing or null counter is 0: error lines carry partial usage; the API sends null for unused ones."""
    value = usage.get(key)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


class Pricer:
    """Prices result lines; unknown models cost None (with one warning each), never a silent 0."""

    def __init__(
        self,
        price_file: str | os.PathLike[str] | None = None,
        *,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._warn = warn or _log.warning
        self._file_rates = _load_price_file(Path(price_file)) if price_file is not None else {}
        self._genai_rates: dict[tuple[str, str | None], _Rates | None] = {}
        self._warned: set[str] = set()

    def cost(self, model: str, usage: Mapping[str, Any] | None, *, batch: bool = False) -> float | None:
        """USD for one call, or None when there is no usage or no price for the model; with `batch`, at the
        Message Batches API's price."""
        if not isinstance(usage, Mapping):
            return None
        speed = usage.get("speed")
        rates = self._rates(model, speed if isinstance(speed, str) else None)
        if rates is None:
            return None
        try:
            return rates.bill(usage) * (BATCH_PRICE if batch else 1)
        except ValueError as exc:
            self._warn_once(model, f"cannot price usage for model {model!r} ({exc}): cost_usd is null")
            return None

    def cost_without_cache(self, model: str, usage: Mapping[str, Any] | None) -> float | None:
        """What the same call would have cost with no prompt caching: every cached token read or written
        billed as plain input (the prompt's size, and so its price tier, is the same)."""
        if not isinstance(usage, Mapping):
            return None
        cached = ("cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation")
        if not any(usage.get(key) for key in cached):
            return self.cost(model, usage)
        try:
            prompt = sum(_count(usage, key) for key in ("input_tokens", *cached[:2]))
        except ValueError:
            return None
        plain = {key: value for key, value in usage.items() if key not in cached}
        return self.cost(model, {**plain, "input_tokens": prompt})

    def prepare(self, models: Iterable[str]) -> None:
        """Look the models up now: the first lookup loads genai-prices' table, which takes ~16 ms."""
        for model in models:
            self._rates(model, None)

    def _rates(self, model: str, speed: str | None) -> _Rates | None:
        rates = self._file_rates.get(model)
        if rates is not None:
            return rates
        try:
            return self._genai_rates[model, speed]
        except KeyError:
            rates = self._genai_rates[model, speed] = self._lookup(model, speed)
            return rates

    def _lookup(self, model: str, speed: str | None) -> _Rates | None:
        try:
            _, info = get_snapshot().find_provider_model(model, None, "anthropic", None)
        except LookupError:
            self._warn_once(
                model, f"no price known for model {model!r}: cost_usd is null (give prices with --price-file)"
            )
            return None
        # Anthropic reports fast mode as usage.speed; genai-prices selects those rates by this context.
        prices = info.get_prices(datetime.now(tz=UTC), {"speed": speed} if speed else None)
        try:
            return _rates_from_genai(prices)
        except ValueError as exc:
            self._warn_once(
                model, f"{exc} for model {model!r}: cost_usd is null (give prices with --price-file)"
            )
            return None

    def _warn_once(self, model: str, message: str) -> None:
        if model not in self._warned:
            self._warned.add(model)
            self._warn(message)


def _rates_from_genai(prices: ModelPrice) -> _Rates:
    """Map genai-prices keys to buckets; an unpriced bucket is billed at its parent unit's rate, as there."""
    given: dict[str, _Price] = {k: v for k, v in vars(prices).items() if v is not None and k[0] != "_"}
    if not {"input_mtok", "output_mtok"} <= given.keys() <= _GENAI_PRICE_KEYS:
        raise ValueError(f"unsupported genai-prices price set {sorted(given)}")
    input_price = given["input_mtok"]
    cache_write = given.get("cache_write_mtok", input_price)
    return _Rates(
        input=input_price,
        output=given["output_mtok"],
        cache_write_5m=cache_write,
        cache_write_1h=given.get("cache_write_1h_mtok", cache_write),
        cache_read=given.get("cache_read_mtok", input_price),
        web_search_per_1k=given.get("web_searches_kcount", Decimal(0)),
        tiered=any(isinstance(price, TieredPrices) for price in given.values()),
    )


def _load_price_file(path: Path) -> dict[str, _Rates]:
    """Read the file with Decimal floats so that prices stay exact, as in genai-prices' own data."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise PriceFileError(f"price file {str(path)!r}: unsupported extension (use .json or .toml)")
    load = json.load if suffix == ".json" else tomllib.load
    try:
        with path.open("rb") as fh:
            data = load(fh, parse_float=Decimal)
    # JSONDecodeError, TOMLDecodeError and UnicodeDecodeError are all ValueErrors.
    except (OSError, ValueError) as exc:
        raise PriceFileError(f"price file {str(path)!r}: cannot read: {exc}") from exc
    if isinstance(data, dict) and data.keys() == {"models"}:
        data = data["models"]
    if not isinstance(data, dict):
        raise PriceFileError(f"price file {str(path)!r}: expected a map of model name -> prices")
    return {model: _parse_entry(path, model, entry) for model, entry in data.items()}


def _parse_entry(path: Path, model: str, entry: object) -> _Rates:
    where = f"price file {str(path)!r}: model {model!r}"
    if not isinstance(entry, dict):
        raise PriceFileError(f"{where}: expected a table of prices, got {entry!r}")
    unknown = sorted(entry.keys() - _ALLOWED_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(_ALLOWED_FIELDS))
        raise PriceFileError(f"{where}: field {unknown[0]!r}: unknown field (allowed: {allowed})")
    for key in _REQUIRED_FIELDS:
        if key not in entry:
            raise PriceFileError(f"{where}: field {key!r}: required (USD per million tokens)")
    values: dict[str, Decimal] = {}
    for key, value in entry.items():
        price = Decimal(value) if type(value) is int else value
        if not isinstance(price, Decimal) or not price.is_finite() or price < 0:
            raise PriceFileError(f"{where}: field {key!r}: must be a number >= 0, got {value!r}")
        values[key] = price
    input_price = values["input"]
    for key, multiplier in _DEFAULT_INPUT_MULTIPLIERS.items():
        values.setdefault(key, input_price * multiplier)
    return _Rates(
        input=input_price,
        output=values["output"],
        cache_write_5m=values["cache_write"],
        cache_write_1h=values["cache_write_1h"],
        cache_read=values["cache_read"],
        web_search_per_1k=values.get("web_search_per_1k", _DEFAULT_WEB_SEARCH_PER_1K),
        tiered=False,
    )
