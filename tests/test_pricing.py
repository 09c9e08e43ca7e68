from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import calc_price, extract_usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice

from batchstream.pricing import PriceFileError, Pricer

PLAIN = {
    "input_tokens": 12,
    "output_tokens": 40,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
CACHED = {**PLAIN, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 50}
SPLIT = {**CACHED, "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 40}}
FULL = {**SPLIT, "server_tool_use": {"web_search_requests": 2}, "service_tier": "standard"}
LONG_PROMPT = {
    **SPLIT,
    "input_tokens": 120_000,
}  # crosses the 100k / 200k prompt tiers where a model has them
USAGES = {"plain": PLAIN, "cached": CACHED, "split": SPLIT, "full": FULL, "long": LONG_PROMPT}


def genai_figure(model: str, usage: dict[str, Any], context: dict[str, str] | None = None) -> float:
    """The reference: genai-prices' own extraction and pricing, on the slow path."""
    extracted = extract_usage({"usage": usage}, provider_id="anthropic")
    return float(
        calc_price(extracted.usage, model, provider_id="anthropic", price_context=context).total_price
    )


def no_warn(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


@pytest.mark.parametrize(
    "model", ["claude-sonnet-5-5", "claude-haiku-4-5", "claude-haiku-5-5", "claude-opus-4-6"]
)
@pytest.mark.parametrize("usage", USAGES.values(), ids=USAGES.keys())
def test_cost_equals_genai_prices(model: str, usage: dict[str, Any]) -> None:
    assert Pricer(warn=no_warn).cost(model, usage) == genai_figure(model, usage)


@pytest.mark.parametrize(
    "model", [m.id for m in get_snapshot().find_provider(None, "anthropic", None).models]
)
def test_every_anthropic_model_matches_genai_prices(model: str) -> None:
    pricer = Pricer(warn=no_warn)
    for usage in USAGES.values():
        assert pricer.cost(model, usage) == genai_figure(model, usage)


def test_hand_computed_figures() -> None:
    """Cache reads/writes are billed on top of input_tokens, which excludes them."""
    pricer = Pricer(warn=no_warn)
    # sonnet-5-5: $2 in, $10 out, $2.5 5m write, $4 1h write, $0.1 read per MTok; $10 per 1k searches:
    # 12*2 + 60*2.5 + 40*4 + 50*0.1 + 40*10 = 739 per MTok, plus 2 searches
    assert pricer.cost("claude-sonnet-5-5", FULL) == 0.020739
    # haiku-4-5 without a TTL split: every cache write at the 5-minute rate ($1.25)
    assert pricer.cost("claude-haiku-4-5", CACHED) == 0.000342  # 12*1 + 100*1.25 + 50*0.1 + 40*5
    assert pricer.cost("claude-haiku-4-5", PLAIN) == 0.000212


def test_long_prompt_tier_counts_cached_tokens() -> None:
    """haiku-5-5 bills every token 5x once the whole prompt (cache included) exceeds 100k tokens."""
    pricer = Pricer(warn=no_warn)
    under = {"input_tokens": 99_000, "cache_read_input_tokens": 900, "output_tokens": 10}
    over = {**under, "cache_read_input_tokens": 1_001}
    assert pricer.cost("claude-haiku-5-5", under) == 0.009914  # 99_000*0.1 + 900*0.01 + 10*0.5 per MTok
    assert pricer.cost("claude-haiku-5-5", over) == 0.04957505  # 99_000*0.5 + 1_001*0.05 + 10*2.5 per MTok


def test_a_prompt_exactly_at_a_tier_start_pays_the_base_rate() -> None:
    """A tier applies past its start, not at it, as genai-prices decides."""
    pricer = Pricer(warn=no_warn)
    at = {"input_tokens": 100_000, "output_tokens": 10}
    past = {"input_tokens": 100_001, "output_tokens": 10}
    assert pricer.cost("claude-haiku-5-5", at) == 0.010005  # 100_000*0.1 + 10*0.5 per MTok
    assert pricer.cost("claude-haiku-5-5", past) == 0.0500255  # 100_001*0.5 + 10*2.5 per MTok
    for usage in (at, past):
        assert pricer.cost("claude-haiku-5-5", usage) == genai_figure("claude-haiku-5-5", usage)


def test_many_digit_prices_and_large_counts_are_billed_exactly(tmp_path: Path) -> None:
    """The float of the exact sum: no rounding before the one at the end."""
    path = tmp_path / "prices.json"
    path.write_text('{"m": {"input": 0.123456789, "output": 17.000000001, "cache_read": 0.3}}')
    usage = {"input_tokens": 987_654_321, "output_tokens": 123_456_789, "cache_read_input_tokens": 3}
    exact = (
        Decimal("0.123456789") * 987_654_321 + Decimal("17.000000001") * 123_456_789 + Decimal("0.3") * 3
    ) / 1_000_000
    assert Pricer(path, warn=no_warn).cost("m", usage) == float(exact)


def test_fast_mode_uses_speed_from_usage() -> None:
    pricer = Pricer(warn=no_warn)
    fast = {**SPLIT, "speed": "fast"}
    assert pricer.cost("claude-opus-5-5", fast) == genai_figure("claude-opus-5-5", SPLIT, {"speed": "fast"})
    assert pricer.cost("claude-opus-5-5", fast) != pricer.cost("claude-opus-5-5", SPLIT)
    assert pricer.cost("claude-opus-5-5", {**SPLIT, "speed": "standard"}) == pricer.cost(
        "claude-opus-5-5", SPLIT
    )


def test_partial_and_null_counters_count_as_zero() -> None:
    pricer = Pricer(warn=no_warn)
    assert pricer.cost("claude-haiku-4-5", {"input_tokens": 1000}) == 0.001
    nulls = {
        "input_tokens": 1000,
        "output_tokens": 0,
        "cache_creation_input_tokens": None,
        "cache_creation": None,
    }
    assert pricer.cost("claude-haiku-4-5", nulls) == 0.001
    assert pricer.cost("claude-haiku-4-5", {}) == 0.0


def test_split_without_total_uses_the_split() -> None:
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation": SPLIT["cache_creation"]}
    assert Pricer(warn=no_warn).cost("claude-haiku-4-5", usage) == 0.000155  # 60*1.25 + 40*2 per MTok


def test_no_usage_is_no_cost() -> None:
    assert Pricer(warn=no_warn).cost("claude-haiku-4-5", None) is None
    assert Pricer(warn=no_warn).cost("mystery-model", None) is None


def test_unknown_model_warns_once_per_model() -> None:
    warnings: list[str] = []
    pricer = Pricer(warn=warnings.append)
    assert pricer.cost("mystery-model", PLAIN) is None
    assert pricer.cost("mystery-model", {**PLAIN, "speed": "fast"}) is None
    assert pricer.cost("other-model", PLAIN) is None
    assert warnings == [
        "no price known for model 'mystery-model': cost_usd is null (give prices with --price-file)",
        "no price known for model 'other-model': cost_usd is null (give prices with --price-file)",
    ]


def test_prepare_looks_models_up_before_any_reply_and_warns_then_not_again() -> None:
    warnings: list[str] = []
    pricer = Pricer(warn=warnings.append)
    pricer.prepare(["claude-haiku-4-5", "mystery-model"])
    assert warnings == [
        "no price known for model 'mystery-model': cost_usd is null (give prices with --price-file)"
    ]
    assert pricer.cost("mystery-model", PLAIN) is None
    assert pricer.cost("claude-haiku-4-5", PLAIN) == genai_figure("claude-haiku-4-5", PLAIN)
    assert len(warnings) == 1


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": -1, "output_tokens": 0},
        {"input_tokens": "12", "output_tokens": 0},
        {"input_tokens": 1.5, "output_tokens": 0},
        {**CACHED, "cache_creation": {"ephemeral_1h_input_tokens": 101}},
    ],
)
def test_malformed_usage_is_unpriced_with_a_warning(usage: dict[str, Any]) -> None:
    warnings: list[str] = []
    pricer = Pricer(warn=warnings.append)
    assert pricer.cost("claude-haiku-4-5", usage) is None
    assert pricer.cost("claude-haiku-4-5", usage) is None
    assert len(warnings) == 1
    assert warnings[0].startswith("cannot price usage for model 'claude-haiku-4-5' (")


JSON_PRICES = """{"my-model": {"input": 3.0, "output": 15, "cache_write": 3.75, "cache_write_1h": 6.0,
                 "cache_read": 0.3, "web_search_per_1k": 10.0}}"""
TOML_PRICES = """
[models."my-model"]
input = 3.0
output = 15
cache_write = 3.75
cache_write_1h = 6.0
cache_read = 0.3
web_search_per_1k = 10.0
"""
# 12*3 + 60*3.75 + 40*6 + 50*0.3 + 40*15 = 1116 per MTok, plus 2 searches at $10/1k
MY_MODEL_FULL = 0.021116


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("prices.json", JSON_PRICES),
        ("prices.JSON", '{"models": ' + JSON_PRICES + "}"),
        ("prices.toml", TOML_PRICES),
        ("prices.toml", TOML_PRICES.replace("[models.", "[")),
    ],
)
def test_price_file_formats(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert Pricer(path, warn=no_warn).cost("my-model", FULL) == MY_MODEL_FULL


def test_price_file_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."cheap"]\ninput = 2\noutput = 8\n')
    # cache_write 2.5 (1.25x), cache_write_1h 4 (2x), cache_read 0.2 (0.1x), web search $10/1k:
    # 12*2 + 60*2.5 + 40*4 + 50*0.2 + 40*8 = 664 per MTok, plus 2 searches
    assert Pricer(str(path), warn=no_warn).cost("cheap", FULL) == 0.020664


def test_price_file_overrides_genai_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"claude-haiku-4-5": {"input": 100, "output": 0}}')
    pricer = Pricer(path, warn=no_warn)
    assert pricer.cost("claude-haiku-4-5", PLAIN) == 0.0012
    assert pricer.cost("claude-haiku-4-5-20251001", PLAIN) == genai_figure("claude-haiku-4-5", PLAIN)


@pytest.mark.parametrize(
    ("name", "text", "parts"),
    [
        ("p.json", '{"m": {"input": -1, "output": 1}}', ["'m'", "'input'", ">= 0"]),
        ("p.json", '{"m": {"input": "3", "output": 1}}', ["'m'", "'input'", ">= 0"]),
        ("p.json", '{"m": {"input": true, "output": 1}}', ["'m'", "'input'"]),
        ("p.json", '{"m": {"input": NaN, "output": 1}}', ["'m'", "'input'"]),
        ("p.toml", "[m]\ninput = inf\noutput = 1\n", ["'m'", "'input'"]),
        ("p.json", '{"m": {"input": 1, "output": 1, "inptu": 1}}', ["'m'", "'inptu'", "unknown field"]),
        ("p.toml", "[models.m]\ninput = 1\n", ["'m'", "'output'", "required"]),
        ("p.json", '{"m": 3}', ["'m'", "expected a table"]),
        ("p.json", "[1, 2]", ["expected a map"]),
        ("p.json", '{"m": {"input": 1,', ["cannot read"]),
        ("p.toml", "[m\n", ["cannot read"]),
        ("p.yaml", "m: {}", ["unsupported extension"]),
    ],
)
def test_price_file_errors(tmp_path: Path, name: str, text: str, parts: list[str]) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as excinfo:
        Pricer(path)
    message = str(excinfo.value)
    assert str(path) in message
    for part in parts:
        assert part in message


def test_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read"):
        Pricer(tmp_path / "absent.json")


def test_unbillable_genai_price_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newer genai-prices may price units this module does not bill: null beats a silent under-charge."""

    class Model:
        def get_prices(self, *_: object) -> ModelPrice:
            return ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(1), requests_kcount=Decimal(1))

    class Snapshot:
        def find_provider_model(self, *_: object) -> tuple[None, Model]:
            return None, Model()

    monkeypatch.setattr("batchstream.pricing.get_snapshot", Snapshot)
    warnings: list[str] = []
    assert Pricer(warn=warnings.append).cost("claude-future", PLAIN) is None
    assert warnings == [
        "unsupported genai-prices price set ['input_mtok', 'output_mtok', 'requests_kcount'] "
        "for model 'claude-future': "
        "cost_usd is null (give prices with --price-file)"
    ]
