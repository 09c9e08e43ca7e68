"""Auto-caching end to end: shared prefixes found, marked and warmed once, paid for as the usage says.

Everything runs through the real SDK against the simulator, whose prompt cache is written only from a
request's message_start on: so without the warm-up, a group launched at concurrency 32 would pay up to
32 writes, and these counts would show it.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import read_jsonl, run_cli, write_jsonl

from batchstream import Limits, Output, RetryPolicy, RunConfig, run_batch
from batchstream.attempts import Ok, run_attempts
from batchstream.caching import plan_cache
from batchstream.estimate import estimate
from batchstream.inputs import Defaults, iter_requests
from batchstream.limiter import LaunchController, Ticket
from batchstream.outage import Breaker
from batchstream.pricing import Pricer
from batchstream.simulator import SimulatorConfig, expected_reply
from batchstream.simulator.cache import PromptCache
from batchstream.tokens import estimate_input_tokens
from batchstream.transport import Sent

MODEL = "claude-sonnet-5-5"
# claude-sonnet-5-5's prices per million tokens (the price database): input, 5m write, 1h write, read, output.
PRICES = {"input": "2", "write_5m": "2.5", "write_1h": "4", "read": "0.1", "output": "10"}
_WORDS = ("the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from")


def _text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(words))


# About 6,000 tokens (at four characters a token, as the simulator counts).
SYSTEM = _text(1, 6_800)


def _run(tmp_path: Path, rows: list[dict[str, Any]], name: str, **config: Any) -> list[dict[str, Any]]:
    prompts = write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / f"{name}.jsonl"
    run_batch(
        RunConfig(
            input=prompts,
            output=Output(path=output),
            simulate=True,
            # A first token after 50 ms: items launched together overlap, as on the service.
            simulator=SimulatorConfig(ttft_s=0.05),
            **config,
        )
    )
    return read_jsonl(output)


def _price(usage: dict[str, Any]) -> Decimal:
    """The cost of `usage` worked out here from the list prices, cache multipliers included."""
    split = usage.get("cache_creation") or {}
    write_1h = split.get("ephemeral_1h_input_tokens", 0)
    counts = {
        "input": usage["input_tokens"],
        "write_5m": usage.get("cache_creation_input_tokens", 0) - write_1h,
        "write_1h": write_1h,
        "read": usage.get("cache_read_input_tokens", 0),
        "output": usage["output_tokens"],
    }
    return sum((Decimal(PRICES[k]) * n for k, n in counts.items()), Decimal(0)) / 1_000_000


def _writes(rows: list[dict[str, Any]]) -> int:
    return sum((row["usage"] or {}).get("cache_creation_input_tokens", 0) > 0 for row in rows)


def _reads(rows: list[dict[str, Any]]) -> int:
    return sum((row["usage"] or {}).get("cache_read_input_tokens", 0) > 0 for row in rows)


def test_the_bar_one_write_a_read_per_item_and_a_quarter_of_the_cost(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "system": SYSTEM, "prompt": f"Question {i}: what is {i}?"} for i in range(100)]

    cached = _run(tmp_path, rows, "cached", limits=Limits(concurrency=32))
    plain = _run(tmp_path, rows, "plain", limits=Limits(concurrency=32), auto_cache=False)

    items = [row for row in cached if "kind" not in row]
    [warmup] = [row for row in cached if row.get("kind") == "warmup"]
    assert len(items) == 100 and all(row["status"] == "ok" for row in cached)
    assert warmup["id"].startswith("~warmup:") and warmup["usage"]["output_tokens"] == 0
    assert warmup["stop_reason"] == "max_tokens" and warmup["text"] == ""
    assert _writes(cached) <= 2 and _writes(items) == 0  # the warm-up wrote it, alone
    assert _reads(items) >= 98
    assert _writes(plain) == _reads(plain) == 0
    for row in cached + plain:
        assert Decimal(repr(row["cost_usd"])) == _price(row["usage"]).quantize(Decimal("1e-12")), row["id"]
    total = sum(Decimal(repr(row["cost_usd"])) for row in cached)
    total_plain = sum(Decimal(repr(row["cost_usd"])) for row in plain)
    assert total <= Decimal("0.25") * total_plain
    # What was added is not part of an item: both runs record the same request hashes.
    assert {row["id"]: row["request_hash"] for row in items} == {
        row["id"]: row["request_hash"] for row in plain
    }
    summary = read_jsonl(tmp_path / "cached.summary.jsonl")[-1]
    assert (summary["items"], summary["warmups"]) == (100, 1)
    assert summary["cache_read_input_tokens"] == sum(row["usage"]["cache_read_input_tokens"] for row in items)
    pricer = Pricer()
    without = sum(Decimal(repr(pricer.cost_without_cache(MODEL, row["usage"]))) for row in items)
    assert Decimal(repr(summary["cache_saved_usd"])) == (without - total).quantize(Decimal("1e-9"))


def test_several_groups_each_warmed_once_and_lone_prompts_left_alone(tmp_path: Path) -> None:
    other = _text(2, 6_000)
    rows = [{"id": f"a{i}", "system": SYSTEM, "prompt": f"A {i}?"} for i in range(6)]
    rows += [{"id": f"b{i}", "system": other, "prompt": f"B {i}?"} for i in range(6)]
    rows += [{"id": f"solo{i}", "system": _text(10 + i, 6_000), "prompt": "Alone?"} for i in range(2)]
    rows += [{"id": f"short{i}", "prompt": "Too short to cache."} for i in range(2)]

    done = _run(tmp_path, rows, "out", limits=Limits(concurrency=8))

    warmups = [row for row in done if row.get("kind") == "warmup"]
    by_id = {row["id"]: row for row in done}
    assert len(warmups) == 2 and _writes(warmups) == 2
    assert _reads([row for row in done if row["id"][0] in "ab"]) == 12
    # Unmarked: the simulator reports a cache split only for a prompt with a breakpoint.
    for name in ("solo0", "solo1", "short0", "short1"):
        assert "cache_creation" not in by_id[name]["usage"], name


def test_the_users_own_breakpoints_stay_and_four_is_the_limit(tmp_path: Path) -> None:
    def block(text: str, marked: bool) -> dict[str, Any]:
        return {"type": "text", "text": text, **({"cache_control": {"type": "ephemeral"}} if marked else {})}

    parts = [_text(20 + i, 600) for i in range(6)]
    own = [block(text, marked=i in (1, 3, 4)) for i, text in enumerate(parts)]
    rows = [
        {"id": f"r{i}", "system": own, "cache_control": {"type": "ephemeral"}, "prompt": f"Q{i}?"}
        for i in range(3)
    ]
    requests = list(iter_requests(write_jsonl(tmp_path / "in.jsonl", rows), Defaults()))
    plan = plan_cache(requests)
    marked, group = plan.apply(requests[0])
    # Already four (three blocks and the top-level one): nothing added, nothing moved; still warmed.
    assert marked.params == requests[0].params and group is not None

    system = [block(text, marked=n == 1) for n, text in enumerate(parts)]
    two = [{"id": "s0", "system": system, "prompt": "Q?"}, {"id": "s1", "system": system, "prompt": "R?"}]
    requests = list(iter_requests(write_jsonl(tmp_path / "two.jsonl", two), Defaults()))
    marked, _ = plan_cache(requests).apply(requests[0])
    controls = [index for index, item in enumerate(marked.params["system"]) if "cache_control" in item]
    assert controls == [1, 5]  # the user's kept where it was; ours at the end of the shared part

    done = _run(tmp_path, rows, "out")
    assert [row["status"] for row in done] == ["ok"] * len(done)  # the simulator refuses a fifth


def test_a_forced_tool_choice_is_warmed_with_a_one_token_reply(tmp_path: Path) -> None:
    tool = {"name": "answer", "description": "Answer.", "input_schema": {"type": "object", "properties": {}}}
    rows = [
        {
            "id": f"t{i}",
            "system": SYSTEM,
            "prompt": f"Use the tool {i}.",
            "tools": [tool],
            "tool_choice": {"type": "tool", "name": "answer"},
        }
        for i in range(4)
    ]

    done = _run(tmp_path, rows, "out")

    [warmup] = [row for row in done if row.get("kind") == "warmup"]
    # Sent with max_tokens 0, the simulator (as the API) would have refused it: there would be no line.
    assert warmup["status"] == "ok" and warmup["usage"]["cache_creation_input_tokens"] > 0
    assert _reads([row for row in done if "kind" not in row]) == 4


def test_resume_and_merge_know_warmups_apart(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "system": SYSTEM, "prompt": f"Q{i}?"} for i in range(5)]
    done = _run(tmp_path, rows, "out")
    output = tmp_path / "out.jsonl"
    kept = [line for line in output.read_bytes().splitlines(keepends=True) if b'"q4"' not in line]
    output.write_bytes(b"".join(kept))

    # Resumed without auto-caching: the recorded items match their lines, only q4 runs.
    again = run_cli("run", "in.jsonl", "-o", output, "--simulate", "--no-auto-cache", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rows_after = read_jsonl(output)
    assert sorted(row["id"] for row in rows_after if "kind" not in row) == [f"q{i}" for i in range(5)]
    assert len(rows_after) == len(done)  # one warm-up (from the first run), five items
    summary = read_jsonl(tmp_path / "out.summary.jsonl")[-1]
    assert (summary["items"], summary["warmups"]) == (5, 1)

    merged = run_cli("merge", output, "-o", tmp_path / "merged.jsonl", "--input", "in.jsonl", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert "not in" not in merged.stderr  # the warm-up is no stray result
    assert read_jsonl(tmp_path / "merged.summary.jsonl")[-1]["warmups"] == 1
    shown = run_cli("summary", tmp_path / "merged.jsonl", "--markdown", cwd=tmp_path)
    saved = read_jsonl(tmp_path / "merged.summary.jsonl")[-1]["cache_saved_usd"]
    assert saved > 0 and f"· 1 cache warm-up · saved ${saved:.6f} against no caching" in shown.stdout


def test_an_input_id_may_not_pose_as_a_warmup(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"id": "~warmup:x", "prompt": "Hi"}])
    done = run_cli("run", "in.jsonl", "--simulate", cwd=tmp_path)
    assert done.returncode == 2
    assert "in.jsonl:1: id: ids starting with '~warmup:' are batchstream's own" in done.stderr


@pytest.mark.parametrize("body_extra", [{"stream": True}, {"thinking": {"type": "adaptive"}}])
def test_the_simulator_refuses_max_tokens_0_where_the_api_does(
    simulator: Any, body_extra: dict[str, Any]
) -> None:
    import urllib.error
    import urllib.request

    body = {"model": MODEL, "max_tokens": 0, "messages": [{"role": "user", "content": "Hi"}], **body_extra}
    request = urllib.request.Request(
        simulator.base_url + "/v1/messages",
        data=orjson.dumps(body),
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 400
    name = next(iter(body_extra))
    assert orjson.loads(caught.value.read())["error"]["message"] == (
        f"max_tokens: 0 (prompt cache pre-warming) cannot be combined with {name}"
    )


def _cached_body(model: str = MODEL, ttl: str | None = None, question: str = "Q?") -> dict[str, Any]:
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {
        "model": model,
        "max_tokens": 10,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": control}],
        "messages": [{"role": "user", "content": question}],
    }


def test_the_simulated_cache_is_readable_once_written_per_model_and_within_its_ttl() -> None:
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    first = cache.lookup(_cached_body())
    assert first.read == 0 and cache.lookup(_cached_body(question="Other?")).read == 0  # not written yet
    cache.store(first)  # the writer's message_start
    tokens = first.points[-1].tokens
    assert cache.lookup(_cached_body(question="Other?")).read == tokens
    assert cache.lookup(_cached_body(model="claude-opus-5")).read == 0  # per model
    now[0] = 290.0
    assert cache.lookup(_cached_body()).read == tokens  # a read refreshes the 5-minute TTL...
    now[0] = 580.0
    assert cache.lookup(_cached_body()).read == tokens
    now[0] = 881.0
    assert cache.lookup(_cached_body()).read == 0  # ...and 5 minutes without one end it
    cache.store(cache.lookup(_cached_body(ttl="1h")))
    now[0] += 3_000.0
    assert cache.lookup(_cached_body()).read == tokens


def test_the_simulated_cache_has_each_models_minimum() -> None:
    cache = PromptCache()
    short = _cached_body()
    short["system"][0]["text"] = _text(3, 1_400)  # ~1,300 tokens: enough for 1,024, not for 4,096
    assert cache.lookup(short).points
    assert not cache.lookup({**short, "model": "claude-haiku-4-5"}).points
    usage = expected_reply({**short, "model": "claude-haiku-4-5"})["usage"]
    assert usage["cache_creation_input_tokens"] == 0 and usage["input_tokens"] > 1_024


def test_max_tokens_0_reads_the_prompt_and_generates_nothing() -> None:
    reply = expected_reply({**_cached_body(), "max_tokens": 0})
    assert (reply["content"], reply["stop_reason"], reply["usage"]["output_tokens"]) == ([], "max_tokens", 0)
    assert reply["usage"]["cache_creation_input_tokens"] > 6_000


def test_estimate_projects_the_cost_with_and_without_caching(tmp_path: Path) -> None:
    shared = [{"id": f"q{i}", "system": SYSTEM, "prompt": f"Q{i}?"} for i in range(10)]
    alone = [{"id": f"p{i}", "system": _text(30 + i, 6_000), "prompt": "Q?"} for i in range(2)]

    projected = estimate(write_jsonl(tmp_path / "in.jsonl", shared + alone), simulate=True).as_json()["total"]
    lone = estimate(write_jsonl(tmp_path / "alone.jsonl", alone), simulate=True).as_json()["total"]

    assert projected["cache_groups"] == 1
    # Ten reads at a tenth of the input price, one write at 1.25x and two lone prompts: about 0.35x.
    assert projected["cost_usd_min_cached"] < 0.4 * projected["cost_usd_min"]
    assert projected["cost_usd_max"] - projected["cost_usd_max_cached"] == pytest.approx(
        projected["cost_usd_min"] - projected["cost_usd_min_cached"]
    )
    assert lone["cache_groups"] == 0 and lone["cost_usd_min_cached"] == lone["cost_usd_min"]


def test_a_prefix_read_far_apart_gets_the_1_hour_ttl(tmp_path: Path) -> None:
    rows = [{"id": "a0", "system": SYSTEM, "prompt": "First?"}]
    rows += [{"id": f"x{i}", "prompt": f"Filler {i}?"} for i in range(50)]
    rows += [{"id": "a1", "system": SYSTEM, "prompt": "Last?"}]
    requests = list(iter_requests(write_jsonl(tmp_path / "in.jsonl", rows), Defaults()))

    # At 10 requests a minute, 51 items apart is about 5 minutes: past the 5-minute TTL.
    slow, group = plan_cache(requests, Limits(rpm=10)).apply(requests[0])
    assert group is not None and group.ttl == "1h"
    assert slow.params["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    fast, group = plan_cache(requests, Limits(concurrency=32)).apply(requests[0])
    assert group is not None and group.ttl == "5m"
    assert fast.params["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_a_budget_with_no_room_for_the_warm_up_skips_it_instead_of_waiting_forever(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "system": SYSTEM, "prompt": f"Q{i}?"} for i in range(6)]
    write_jsonl(tmp_path / "in.jsonl", rows)

    # One item's worst case fits in $0.04, one item's and the warm-up's together do not; the items already
    # holding their reservations wait for the warm-up, so the warm-up must not wait for them.
    done = run_cli("run", "in.jsonl", "--simulate", "-c", "2", "--max-cost", "0.04", cwd=tmp_path, timeout=30)

    assert done.returncode == 3, done.stderr
    assert "budget: no room for a cache warm-up now; its group runs without it" in done.stderr
    assert not [row for row in read_jsonl(tmp_path / "in.results.jsonl") if row.get("kind") == "warmup"]


def test_cached_tokens_are_left_out_of_the_input_token_pacing(tmp_path: Path) -> None:
    """The input-token rate limit does not count cache reads (current models): an item of a warmed group
    asks the limiter for its uncached part only."""
    asked: list[int] = []

    class Recording(LaunchController):
        async def acquire(self, input_tokens: int, output_tokens: int) -> Ticket:
            asked.append(input_tokens)
            return await super().acquire(input_tokens, output_tokens)

    class Answering:
        async def send(self, request: Any) -> Sent:
            return Sent({"usage": {"input_tokens": 1, "output_tokens": 1}}, None, 0.0, None, {})

        async def aclose(self) -> None: ...

    rows = [{"id": f"q{i}", "system": SYSTEM, "prompt": f"Q{i}?"} for i in range(2)]
    requests = list(iter_requests(write_jsonl(tmp_path / "in.jsonl", rows), Defaults()))
    marked, group = plan_cache(requests).apply(requests[0])
    assert group is not None

    async def attempt(cached: int) -> None:
        outcome = await run_attempts(
            marked,
            Answering(),
            Recording(4),
            Breaker(RetryPolicy().max_outage),
            RetryPolicy(),
            rng=random.Random(0),
            secret=None,
            stopping=lambda: False,
            cached_tokens=cached,
        )
        assert isinstance(outcome, Ok)

    asyncio.run(attempt(0))
    asyncio.run(attempt(group.tokens))
    whole = estimate_input_tokens(marked.params)
    assert asked == [whole, whole - group.tokens] and group.tokens > 6_000
