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


# Each path runs with auto-caching, then without. Batches end 0.1 s after their creation and are looked at
# every 0.1 s: what is measured on the Batches path is its cost ratio, not its wait.
_BATCHES = ("--via", "batches", "--poll-interval", "0.1")
_PATHS = {"batchstream": (), "batchstream --via batches": _BATCHES}


def prompt_caching(ctx: Context) -> Scenario:
    name = "prompt caching"
    scenario = Scenario(
        "prompt_caching",
        "Prompt caching",
        f"{ITEMS} items sharing a ~6,000-token system prompt (at the simulator's four characters a token), "
        f"each with a short distinct question; concurrency {CONCURRENCY}; simulator `--ttft {TTFT}`, whose "
        "cache is readable from its writer's message_start on. The same file runs with auto-caching (the "
        "default) and with `--no-auto-cache`, streamed and `--via batches` (primed by a single-request "
        "batch, in the Batches API's own cache); costs are the sums of the result lines' `cost_usd` (warm-up "
        "lines included). Goals: at most 2 cache writes, 98 or more reads, cost <= 0.25x the uncached run.",
    )
    work = ctx.dir("prompt_caching")
    source = _write_input(work / "input.jsonl")
    with Simulator(work, ttft=TTFT, batch_processing_s=0.1) as sim:
        for tool, via in _PATHS.items():
            totals = []
            for extra in (via, (*via, "--no-auto-cache")):
                log(f"{name}: {' '.join(('batchstream', *extra))}")
                sim.reset()
                output = work / f"{len(scenario.rows)}-{len(totals)}.results.jsonl"
                argv = batchstream_argv(source, output, sim.url, CONCURRENCY, extra=extra)
                totals.append((run_client(argv, cwd=work), _totals(output)))
            _report(scenario, name, tool, totals)
    return scenario


def _report(
    scenario: Scenario, name: str, tool: str, totals: list[tuple[Any, tuple[Decimal, int, int, int]]]
) -> None:
    (run, (cost, writes, reads, warmups)), (plain_run, (plain_cost, *_)) = totals
    ratio = float(cost / plain_cost) if plain_cost else None
    met = ratio is not None and ratio <= 0.25 and writes <= 2 and reads >= ITEMS - 2
    shown = "-" if ratio is None else f"{ratio:.3f}"
    scenario.rows.append(
        _row(
            name,
            tool,
            ITEMS,
            None,
            run,
            goal=f"cost {shown}x uncached (<= 0.25), {writes} writes (<= 2), {reads} reads (>= {ITEMS - 2})",
            met=met,
        )
    )
    scenario.rows.append(_row(name, f"{tool} --no-auto-cache", ITEMS, None, plain_run))
    scenario.notes.append(
        f"{tool}: with auto-caching ${cost:.6f} ({warmups} warm-up line); without ${plain_cost:.6f}"
    )
