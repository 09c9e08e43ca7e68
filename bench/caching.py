"""The prompt-caching scenario: what auto-caching saves on a batch that shares one long system prompt."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from .harness import Simulator, batchstream_argv, run_client
from .report import Scenario
from .scenarios import Context, _row, log

ITEMS, CONCURRENCY, SYSTEM_WORDS, TTFT = 100, 32, 6_800, 0.2
_WORDS = ("the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from")


def _write_input(path: Path) -> Path:
    rng = random.Random(1)
    system = " ".join(rng.choice(_WORDS) for _ in range(SYSTEM_WORDS))
    with path.open("wb") as out:
        for i in range(ITEMS):
            out.write(orjson.dumps({"id": f"q{i}", "system": system, "prompt": f"Question {i}?"}) + b"\n")
    return path


def _totals(path: Path) -> tuple[Decimal, int, int, int]:
    """Cost (exact sum), cache writes, cache reads and warm-ups over a results file's lines."""
    cost, writes, reads, warmups = Decimal(0), 0, 0, 0
    for raw in path.read_bytes().splitlines():
        record: dict[str, Any] = orjson.loads(raw)
        usage = record.get("usage") or {}
        cost += Decimal(repr(record.get("cost_usd") or 0.0))
        writes += (usage.get("cache_creation_input_tokens") or 0) > 0
        reads += (usage.get("cache_read_input_tokens") or 0) > 0
        warmups += record.get("kind") == "warmup"
    return cost, writes, reads, warmups


def prompt_caching(ctx: Context) -> Scenario:
    name = "prompt caching"
    scenario = Scenario(
        "prompt_caching",
        "Prompt caching",
        f"{ITEMS} items sharing a ~6,000-token system prompt (at the simulator's four characters a token), "
        f"each with a short distinct question; concurrency {CONCURRENCY}; simulator `--ttft {TTFT}`, whose "
        "cache is readable from its writer's message_start on. The same file runs with auto-caching (the "
        "default) and with `--no-auto-cache`; costs are the sums of the result lines' `cost_usd` (warm-up "
        "lines included). Goals: at most 2 cache writes, 98 or more reads, cost <= 0.25x the uncached run.",
    )
    work = ctx.dir("prompt_caching")
    source = _write_input(work / "input.jsonl")
    totals = {}
    with Simulator(work, ttft=TTFT) as sim:
        for tool, extra in (("batchstream", ()), ("batchstream --no-auto-cache", ("--no-auto-cache",))):
            log(f"{name}: {tool}")
            sim.reset()
            output = work / f"{len(totals)}.results.jsonl"
            run = run_client(batchstream_argv(source, output, sim.url, CONCURRENCY, extra=extra), cwd=work)
            totals[tool] = (run, _totals(output))
    (run, (cost, writes, reads, warmups)), (plain_run, (plain_cost, *_)) = totals.values()
    ratio = float(cost / plain_cost) if plain_cost else None
    met = ratio is not None and ratio <= 0.25 and writes <= 2 and reads >= ITEMS - 2
    shown = "-" if ratio is None else f"{ratio:.3f}"
    scenario.rows.append(
        _row(
            name,
            "batchstream",
            ITEMS,
            None,
            run,
            goal=f"cost {shown}x uncached (<= 0.25), {writes} writes (<= 2), {reads} reads (>= {ITEMS - 2})",
            met=met,
        )
    )
    scenario.rows.append(_row(name, "batchstream --no-auto-cache", ITEMS, None, plain_run))
    scenario.notes.append(
        f"with auto-caching: ${cost:.6f} ({warmups} warm-up line); without: ${plain_cost:.6f}"
    )
    return scenario
