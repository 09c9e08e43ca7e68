"""`batchstream estimate`: input tokens from count_tokens (the simulator's count is the truth) or labelled
approximate, and a cost range that is the Pricer's own figures summed per item."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import TEST_KEY, cli_env, run_cli, write_jsonl

from batchstream.estimate import estimate
from batchstream.inputs import Defaults, Request, iter_requests
from batchstream.pricing import Pricer
from batchstream.shard import Shard
from batchstream.simulator.prompt import estimate_input_tokens
from batchstream.tokens import estimate_input_tokens as local_estimate

SONNET = "claude-sonnet-5-5"
HAIKU = "claude-haiku-4-5"


def rows(count: int = 30) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(count):
        row: dict[str, Any] = {
            "id": f"item-{i}",
            "prompt": f"Question {i}: " + "why is the sky blue? " * (i % 7),
        }
        if i % 3 == 0:
            row["model"] = HAIKU
            row["max_tokens"] = 50 + i
        if i % 4 == 0:
            row["system"] = "Answer in one sentence."
        out.append(row)
    return out


def simulator_count(request: Request) -> int:
    return estimate_input_tokens(request.params)


def expected(
    path: Path,
    count: Callable[[Request], int],
    *,
    shard: Shard | None = None,
    means: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per model and "total": items, input tokens, max output, and the Pricer's per-item costs summed."""
    pricer = Pricer()
    out: dict[str, dict[str, Any]] = {}

    def cost(model: str, input_tokens: int, output_tokens: int) -> Decimal:
        value = pricer.cost(model, {"input_tokens": input_tokens, "output_tokens": output_tokens})
        assert value is not None
        return Decimal(repr(value))

    for request in iter_requests(path, Defaults()):
        if shard is not None and not shard.owns(request.id):
            continue
        model, max_tokens, tokens = request.params["model"], request.params["max_tokens"], count(request)
        for key in (model, "total"):
            figures = out.setdefault(
                key, {"items": 0, "input_tokens": 0, "output_tokens_max": 0, "min": 0, "max": 0, "typical": 0}
            )
            figures["items"] += 1
            figures["input_tokens"] += tokens
            figures["output_tokens_max"] += max_tokens
            figures["min"] += cost(model, tokens, 0)
            figures["max"] += cost(model, tokens, max_tokens)
            if means is not None:
                figures["typical"] += cost(model, tokens, min(means[model], max_tokens))
    return out


def usd(value: Decimal) -> float:
    return float(value.quantize(Decimal("1e-9")))


def by_model(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**{line["model"]: line for line in report["models"]}, "total": report["total"]}


def assert_matches(report: dict[str, Any], want: dict[str, dict[str, Any]]) -> None:
    got = by_model(report)
    assert got.keys() == want.keys()
    for key, figures in want.items():
        line = got[key]
        assert line["items"] == figures["items"], key
        assert line["input_tokens"] == figures["input_tokens"], key
        assert line["output_tokens_max"] == figures["output_tokens_max"], key
        assert line["cost_usd_min"] == usd(figures["min"]), key
        assert line["cost_usd_max"] == usd(figures["max"]), key


def test_count_tokens_gives_the_simulators_count_and_the_pricers_range(tmp_path: Path, simulator) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows())
    done = run_cli("estimate", path, "--json", base_url=simulator.base_url)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert_matches(report, expected(path, simulator_count))
    assert report["input_tokens_source"] == "count_tokens"
    assert all(line["input_tokens_source"] == "count_tokens" for line in by_model(report).values())
    assert report["total"]["approximated_items"] == 0
    assert report["total"]["cost_usd_typical"] is None
    stats = simulator.stats()
    assert stats["requests"] == 30 and stats["by_status"] == {"200": 30}
    assert "input tokens counted by the API (count_tokens)" in done.stderr
    assert f"{SONNET}     20" in done.stderr and "total" in done.stderr


def test_without_a_key_input_tokens_are_approximate_and_labelled(tmp_path: Path, simulator) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows())
    env = cli_env(simulator.base_url)
    del env["ANTHROPIC_API_KEY"]
    done = run_cli("estimate", path, "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert_matches(report, expected(path, lambda request: local_estimate(request.params)))
    assert report["input_tokens_source"] == "approximate"
    for line in by_model(report).values():
        assert line["input_tokens_source"] == "approximate"
        assert line["approximated_items"] == line["items"]
    assert "input tokens APPROXIMATE" in done.stderr
    assert done.stderr.count("approximate") == 3  # the two models and the total
    assert simulator.stats()["requests"] == 0


def test_shard_estimates_exactly_the_items_that_shard_runs(tmp_path: Path, simulator) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows())
    items = 0
    for index in (1, 2, 3):
        shard = Shard(index, 3)
        done = run_cli("estimate", path, "--shard", str(shard), "--json", base_url=simulator.base_url)
        assert done.returncode == 0, done.stderr
        report = orjson.loads(done.stdout)
        want = expected(path, simulator_count, shard=shard)
        assert 0 < want["total"]["items"] < 30
        assert_matches(report, want)
        assert report["shard"] == str(shard)
        items += report["total"]["items"]
    assert items == 30
    assert simulator.stats()["requests"] == 30


def test_previous_results_price_the_typical_output(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows())
    ok = {"status": "ok", "error": None}
    previous = write_jsonl(
        tmp_path / "old.results.jsonl",
        [
            {"id": "p1", "model": SONNET, "usage": {"input_tokens": 5, "output_tokens": 10}, **ok},
            {"id": "p2", "model": SONNET, "usage": {"input_tokens": 5, "output_tokens": 30}, **ok},
            {"id": "p3", "model": SONNET, "status": "error", "usage": None, "error": {"type": "api_error"}},
            {"id": "p4", "model": HAIKU, "usage": {"input_tokens": 5, "output_tokens": 70}, **ok},
        ],
    )
    env = cli_env(None)
    del env["ANTHROPIC_API_KEY"]
    done = run_cli("estimate", path, "--simulate", "--previous", previous, "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    # Means: sonnet 20, haiku 70, which some haiku items' max_tokens (50 + i) cap.
    want = expected(path, simulator_count, means={SONNET: 20, HAIKU: 70})
    assert_matches(report, want)
    assert report["input_tokens_source"] == "count_tokens"
    got = by_model(report)
    for key, figures in want.items():
        assert got[key]["cost_usd_typical"] == usd(figures["typical"]), key
    assert got[SONNET]["output_tokens_typical"] == 20 * 20
    assert got[HAIKU]["output_tokens_typical"] == sum(min(70, 50 + i) for i in range(0, 30, 3))
    assert "cost typical" in done.stderr


def test_library_estimate_without_a_previous_mean_for_a_model(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(6))
    previous = write_jsonl(
        tmp_path / "old.jsonl",
        [{"id": "p", "model": SONNET, "status": "ok", "usage": {"input_tokens": 1, "output_tokens": 8}}],
    )
    warnings: list[str] = []
    result = estimate(path, previous=previous, warn=warnings.append)
    assert result.method == "approximate"
    assert result.models[SONNET].output_tokens_typical == 8 * 4
    assert result.models[HAIKU].cost_typical is None
    assert result.total.cost_typical is None  # a sum over some models only would pass for the whole
    assert warnings == [f"{previous} has no ok item of model '{HAIKU}': no typical figure for it"]


def test_a_refused_key_stops_with_exit_2_and_never_shows_the_key(tmp_path: Path, simulator_factory) -> None:
    simulator = simulator_factory(api_key="sk-ant-the-only-accepted-key")
    path = write_jsonl(tmp_path / "in.jsonl", rows())
    done = run_cli("estimate", path, "--json", base_url=simulator.base_url)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "the API rejected the API key while counting tokens (HTTP 401" in done.stderr
    assert "nothing was spent" in done.stderr
    assert TEST_KEY not in done.stderr


def test_an_item_count_tokens_refuses_falls_back_to_the_approximation(tmp_path: Path, simulator) -> None:
    bad = {"id": "odd", "messages": [{"role": "user", "content": [{"text": "a block with no type"}]}]}
    path = write_jsonl(tmp_path / "in.jsonl", [*rows(6), bad])
    done = run_cli("estimate", path, "--json", base_url=simulator.base_url)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)

    def count(request: Request) -> int:
        return local_estimate(request.params) if request.id == "odd" else simulator_count(request)

    assert_matches(report, expected(path, count))
    assert report["count_errors"] == {"invalid_request_error": 1}
    assert report["input_tokens_source"] == "mixed"
    assert by_model(report)[SONNET]["approximated_items"] == 1
    assert by_model(report)[HAIKU]["input_tokens_source"] == "count_tokens"
    assert "count_tokens failed for 1 item(s), whose input tokens are approximate (first: odd:" in done.stderr


@pytest.mark.parametrize("shard", ["0/3", "4/3", "x"])
def test_bad_shard_is_a_usage_error(tmp_path: Path, shard: str) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(3))
    done = run_cli("estimate", path, "--shard", shard)
    assert done.returncode == 2
    assert "--shard" in done.stderr


def test_bad_input_sends_nothing(tmp_path: Path, simulator) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [*rows(3), {"id": "x", "promt": "typo"}])
    done = run_cli("estimate", path, base_url=simulator.base_url)
    assert done.returncode == 2
    assert "did you mean 'prompt'?" in done.stderr
    assert simulator.stats()["requests"] == 0
