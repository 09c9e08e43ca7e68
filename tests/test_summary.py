from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchstream.summary import RunStats, SummaryBuilder, format_table, summarize_file, write_summary


def result(
    item_id: str,
    model: str | None = "claude-sonnet-5-5",
    *,
    status: str = "ok",
    usage: dict[str, Any] | None = None,
    cost: float | None = 0.001,
    latency: float | None = 1.0,
    ttft: float | None = 0.2,
    attempts: int = 1,
    retries: dict[str, int] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": item_id,
        "status": status,
        "text": "",
        "model": model,
        "usage": usage,
        "cost_usd": cost,
        "latency_s": latency,
        "ttft_s": ttft,
        "attempts": attempts,
        "error": error,
    }
    if retries is not None:
        line["retries"] = retries
    return line


def usage(inp: int, out: int, cache_write: int = 0, cache_read: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "service_tier": "standard",
    }


def mixed_results() -> list[dict[str, Any]]:
    return [
        result(
            "a",
            usage=usage(10, 100, 5, 7),
            cost=0.1,
            latency=1.0,
            ttft=0.1,
            retries={"overloaded": 1},
            attempts=2,
        ),
        result("b", usage=usage(20, 200), cost=0.2, latency=2.0, ttft=0.3),
        result("c", "claude-haiku-4-5", usage=usage(1, 2), cost=0.3, latency=3.0, ttft=None),
        result(
            "d",
            "claude-haiku-4-5",
            status="error",
            usage=None,
            cost=None,
            latency=9.0,
            attempts=3,
            retries={"overloaded": 2, "rate_limit": 1},
            error={"type": "overloaded_error", "message": "busy", "status": 529},
        ),
        result("e", "my-model", usage=usage(3, 4), cost=None),
        result("f", status="error", usage=usage(30, 0), cost=0.05, error={"type": "api_error"}),
    ]


def build(results: list[dict[str, Any]]) -> SummaryBuilder:
    builder = SummaryBuilder()
    for line in results:
        builder.add(line)
    return builder


def test_model_lines_and_total() -> None:
    *models, total = build(mixed_results()).lines()
    assert models == [
        {
            "kind": "model",
            "model": "claude-haiku-4-5",
            "items": 2,
            "ok": 1,
            "errors": 1,
            "input_tokens": 1,
            "output_tokens": 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cost_usd": 0.3,
            "unpriced_items": 0,
            "warmups": 0,
            "cache_saved_usd": None,
        },
        {
            "kind": "model",
            "model": "claude-sonnet-5-5",
            "items": 3,
            "ok": 2,
            "errors": 1,
            "input_tokens": 60,
            "output_tokens": 300,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 7,
            "cost_usd": 0.35,  # 0.1 + 0.2 + 0.05 without float noise
            "unpriced_items": 0,
            "warmups": 0,
            "cache_saved_usd": None,
        },
        {
            "kind": "model",
            "model": "my-model",
            "items": 1,
            "ok": 1,
            "errors": 0,
            "input_tokens": 3,
            "output_tokens": 4,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cost_usd": None,  # nothing priceable, one item billed: unknown, not free
            "unpriced_items": 1,
            "warmups": 0,
            "cache_saved_usd": None,
        },
    ]
    assert total == {
        "kind": "total",
        "items": 6,
        "ok": 4,
        "errors": 2,
        "input_tokens": 64,
        "output_tokens": 306,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 7,
        "cost_usd": 0.65,
        "unpriced_items": 1,
        "warmups": 0,
        "cache_saved_usd": None,
        "wall_time_s": None,
        "items_per_s": None,
        "output_tokens_per_s": None,
        "latency_p50_s": 1.5,  # ok items only: 1, 1, 2, 3 (the failed item's 9.0 is left out)
        "latency_p95_s": 2.8499999999999996,  # == numpy.percentile([1, 1, 2, 3], 95)
        "ttft_p50_s": 0.2,  # 0.1, 0.2, 0.3 (one ok item has no TTFT)
        "ttft_p95_s": 0.29,
        "attempts": 9,
        "retries": {"overloaded": 3, "rate_limit": 1},
        "errors_by_type": {"api_error": 1, "overloaded_error": 1},
    }


def test_cost_is_zero_when_nothing_was_billed() -> None:
    *_, total = build([result("a", status="error", usage=None, cost=None, error=None)]).lines()
    assert total["cost_usd"] == 0.0
    assert total["unpriced_items"] == 0
    assert total["errors_by_type"] == {"unknown": 1}
    assert total["latency_p50_s"] is None
    assert total["ttft_p95_s"] is None


def test_cost_sum_rounds_away_float_noise() -> None:
    *_, total = build([result(str(i), cost=0.1, usage=usage(1, 1)) for i in range(3)]).lines()
    assert 0.1 + 0.1 + 0.1 != 0.3
    assert total["cost_usd"] == 0.3


def test_cost_sum_is_exact_over_many_distinct_costs() -> None:
    # Costs are summed per distinct value, in batches when there are many: the exact Decimal sum all the same.
    costs = [round(0.000001 * (i % 5000) + 1e-7 * (i % 7), 12) for i in range(12_000)]
    models = ("m1", "m2")
    rows = [result(str(i), models[i % 2], cost=cost, usage=usage(1, 1)) for i, cost in enumerate(costs)]
    *lines, total = build(rows).lines()
    for line, model in zip(lines, models, strict=True):
        exact = sum((Decimal(repr(c)) for i, c in enumerate(costs) if models[i % 2] == model), Decimal(0))
        assert line["cost_usd"] == float(exact.quantize(Decimal("1e-9")))
    exact = sum((Decimal(repr(c)) for c in costs), Decimal(0))
    assert total["cost_usd"] == float(exact.quantize(Decimal("1e-9")))


def test_only_finite_numbers_count_as_times_and_costs() -> None:
    odd: list[Any] = [True, float("nan"), float("inf"), "1.0", None]
    rows = [result(str(i), latency=v, ttft=v, cost=v, usage=usage(1, 1)) for i, v in enumerate(odd)]
    rows.append(result("int", latency=2, ttft=1, cost=1, usage=usage(1, 1)))
    *_, total = build(rows).lines()
    assert (total["latency_p50_s"], total["ttft_p50_s"], total["cost_usd"]) == (2.0, 1.0, 1.0)
    assert total["unpriced_items"] == len(odd)


@pytest.mark.parametrize(
    ("values", "p50", "p95"),
    [
        (range(1, 101), 50.5, 95.05),
        ([7.0], 7.0, 7.0),
        ([3.0, 1.0], 2.0, 2.9),
        ([0.5, 0.25, 4.0, 1.0, 2.0], 1.0, 3.5999999999999996),  # numpy's figure, float rounding included
    ],
)
def test_percentiles_match_numpy_linear(values: Any, p50: float, p95: float) -> None:
    builder = build([result(str(i), latency=float(v), ttft=float(v) / 10) for i, v in enumerate(values)])
    total = builder.lines()[-1]
    assert (total["latency_p50_s"], total["latency_p95_s"]) == (p50, p95)
    assert total["ttft_p50_s"] == pytest.approx(p50 / 10)


def test_run_stats_describe_this_run_only() -> None:
    total = build(mixed_results()).lines(run=RunStats(wall_time_s=4.0, items=2, output_tokens=300))[-1]
    assert total["items"] == 6
    assert (total["wall_time_s"], total["items_per_s"], total["output_tokens_per_s"]) == (4.0, 0.5, 75.0)
    zero = build([]).lines(run=RunStats(wall_time_s=0.0, items=0, output_tokens=0))[-1]
    assert (zero["wall_time_s"], zero["items_per_s"], zero["output_tokens_per_s"]) == (0.0, None, None)


def test_extra_is_merged_into_total() -> None:
    lines = build(mixed_results()).lines(extra={"stop_reason": "budget", "budget_usd": 1.0})
    assert lines[-1]["stop_reason"] == "budget"
    assert lines[-1]["budget_usd"] == 1.0
    assert all("stop_reason" not in line for line in lines[:-1])
    with pytest.raises(ValueError, match="cost_usd"):
        build(mixed_results()).lines(extra={"cost_usd": 0})


def test_empty_summary() -> None:
    assert build([]).lines() == [
        {
            "kind": "total",
            "items": 0,
            "ok": 0,
            "errors": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cost_usd": 0.0,
            "unpriced_items": 0,
            "warmups": 0,
            "cache_saved_usd": None,
            "wall_time_s": None,
            "items_per_s": None,
            "output_tokens_per_s": None,
            "latency_p50_s": None,
            "latency_p95_s": None,
            "ttft_p50_s": None,
            "ttft_p95_s": None,
            "attempts": 0,
            "retries": {},
            "errors_by_type": {},
        }
    ]


def test_missing_model_sorts_last() -> None:
    lines = build([result("a", None), result("b", "z-model"), result("c", "a-model")]).lines()
    assert [line.get("model") for line in lines] == ["a-model", "z-model", None, None]


def write_jsonl(path: Path, results: list[dict[str, Any]], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in results) + tail)


def test_summarize_file_equals_builder(tmp_path: Path) -> None:
    path = tmp_path / "r.results.jsonl"
    write_jsonl(path, mixed_results())
    assert summarize_file(path).lines() == build(mixed_results()).lines()


def test_summarize_file_last_line_wins(tmp_path: Path) -> None:
    path = tmp_path / "r.results.jsonl"
    first = result("a", status="error", usage=usage(5, 0), cost=0.5, error={"type": "overloaded_error"})
    retried = result("a", "claude-haiku-4-5", usage=usage(10, 20), cost=0.25, latency=2.0)
    write_jsonl(path, [first, result("b", usage=usage(1, 1), cost=0.125), retried])
    *models, total = summarize_file(path).lines()
    assert [(m["model"], m["items"], m["cost_usd"]) for m in models] == [
        ("claude-haiku-4-5", 1, 0.25),
        ("claude-sonnet-5-5", 1, 0.125),
    ]
    assert (total["items"], total["errors"], total["input_tokens"], total["cost_usd"]) == (2, 0, 11, 0.375)
    assert total["errors_by_type"] == {}


def test_summarize_file_skips_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "r.results.jsonl"
    write_jsonl(path, mixed_results(), tail=b'{"id": "g", "status": "ok", "us\n\n')
    assert summarize_file(path).lines() == build(mixed_results()).lines()
    write_jsonl(path, mixed_results(), tail=b'{"id": "g", "stat')
    assert summarize_file(path).lines() == build(mixed_results()).lines()


def test_the_lines_before_an_offset_and_the_rest_absorbed_count_as_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "r.results.jsonl"
    earlier, later = mixed_results()[:4], mixed_results()[4:]
    write_jsonl(path, earlier)
    end = path.stat().st_size
    write_jsonl(path, earlier + later)

    summary = summarize_file(path, end=end)
    assert summary.lines() == build(earlier).lines()
    summary.absorb(build(later))
    assert summary.lines() == build(mixed_results()).lines() == summarize_file(path).lines()


def test_an_id_retried_before_the_offset_counts_its_last_line_there(tmp_path: Path) -> None:
    path = tmp_path / "r.results.jsonl"
    failed = result("a", status="error", usage=None, cost=None, error={"type": "overloaded_error"})
    retried = result("a", usage=usage(10, 20), cost=0.25)
    write_jsonl(path, [failed, result("b", cost=0.5), retried])
    end = path.stat().st_size
    write_jsonl(path, [failed, result("b", cost=0.5), retried, result("a", cost=8.0)])
    assert summarize_file(path, end=end).lines() == build([result("b", cost=0.5), retried]).lines()


def test_summarize_file_rejects_a_bad_line_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "r.results.jsonl"
    path.write_bytes(orjson.dumps(result("a")) + b"\n{oops\n" + orjson.dumps(result("b")) + b"\n")
    with pytest.raises(ValueError, match=r"r\.results\.jsonl:2: not valid JSON"):
        summarize_file(path)
    path.write_bytes(b"[1]\n" + orjson.dumps(result("b")) + b"\n")
    with pytest.raises(ValueError, match=r":1: not a JSON object"):
        summarize_file(path)


def test_write_summary_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "r.summary.jsonl"
    lines = build(mixed_results()).lines(run=RunStats(1.0, 6, 306))
    write_summary(path, lines)
    assert [orjson.loads(raw) for raw in path.read_bytes().splitlines()] == lines
    write_summary(str(path), lines[-1:])
    assert [orjson.loads(raw) for raw in path.read_bytes().splitlines()] == lines[-1:]
    with pytest.raises(TypeError):
        write_summary(path, [{"unserializable": object()}])
    assert [orjson.loads(raw) for raw in path.read_bytes().splitlines()] == lines[-1:]
    assert os.listdir(tmp_path) == ["r.summary.jsonl"]


def test_format_table() -> None:
    lines = build(mixed_results()).lines(run=RunStats(wall_time_s=4.0, items=2, output_tokens=300))
    table = format_table(lines)
    rows = table.splitlines()
    assert rows[0].split() == ["model", "items", "ok", "errors", "input", "tok", "output", "tok", "cost"]
    assert rows[1].split() == ["claude-haiku-4-5", "2", "1", "1", "1", "2", "$0.300000"]
    assert rows[2].split() == ["claude-sonnet-5-5", "3", "2", "1", "60", "300", "$0.350000"]
    assert rows[3].split() == ["my-model", "1", "1", "0", "3", "4", "n/a", "(+1", "unpriced)"]
    assert rows[4].split() == ["total", "6", "4", "2", "64", "306", "$0.650000", "(+1", "unpriced)"]
    assert rows[5] == "wall time 4.0s  items/s 0.50  output tok/s 75.0"
    assert rows[6] == "latency p50 1.50s p95 2.85s  TTFT p50 0.20s p95 0.29s"
    assert rows[7] == "prompt cache: 7 tokens read, 5 written (0 warm-ups)"  # no price: no saving shown
    assert rows[8:] == ["retries: overloaded 3, rate_limit 1", "errors: api_error 1, overloaded_error 1"]
    assert len({len(row) for row in rows[:5]}) == 1  # columns line up


def test_format_table_without_run_stats() -> None:
    table = format_table(build([result("a", usage=usage(1234, 5678), cost=1.5)]).lines())
    assert "1,234" in table
    assert "5,678" in table
    assert "$1.500000" in table
    assert "wall time -  items/s -  output tok/s -" in table
