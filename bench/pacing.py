"""Pacing under each rate limit in turn: RPM, ITPM, OTPM binding, the simulator enforcing all three as the
API does (token buckets that start full; input counted at the start; output held at max_tokens, the unused
part given back at the end)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from .harness import Simulator, batchstream_argv, read_results, run_client
from .report import Row, Scenario

CONCURRENCY = 64
TTFT_S = 0.2
# The simulator counts a prompt's text at four characters a token, plus 4 tokens of framing per message.
_FRAMING_TOKENS = 4


@dataclass(frozen=True)
class Case:
    """One limit binding: the simulator's knob, the work, and what each item charges against that limit."""

    label: str
    knob: str
    limit: int
    items: int
    prompt_chars: int
    reply_tokens: int
    max_tokens: int

    def charge(self) -> int:
        """What one item takes from the binding bucket (and, for output, keeps at the end)."""
        if self.knob == "rpm":
            return 1
        if self.knob == "itpm":
            return self.prompt_chars // 4 + _FRAMING_TOKENS
        return self.reply_tokens

    def ideal_s(self) -> float:
        """The fastest the limit lets the work through: the full bucket at once, the rest at limit/60 a
        second; the last request starts once its own charge fits (for output, its whole max_tokens), and
        takes one reply's latency."""
        last = self.max_tokens if self.knob == "otpm" else self.charge()
        needed = (self.items - 1) * self.charge() + last
        return max(0.0, needed - self.limit) / (self.limit / 60) + TTFT_S


CASES = (
    Case("RPM", "rpm", 600, 900, 40, 20, 256),
    Case("ITPM", "itpm", 240_000, 200, 8_000, 20, 256),
    Case("OTPM", "otpm", 60_000, 500, 40, 200, 400),
)
QUICK_CASES = (
    Case("RPM", "rpm", 600, 720, 40, 20, 256),
    Case("ITPM", "itpm", 240_000, 160, 8_000, 20, 256),
    Case("OTPM", "otpm", 60_000, 400, 40, 200, 400),
)


def _write_input(path: Path, case: Case) -> Path:
    filler = "Steady pacing keeps every request under the limit. " * (case.prompt_chars // 50 + 1)
    with path.open("wb") as out:
        for i in range(case.items):
            prompt = f"Item {i:05d}. {filler}"[: case.prompt_chars]
            line = {"id": f"item-{i:05d}", "prompt": prompt, "max_tokens": case.max_tokens}
            out.write(orjson.dumps(line) + b"\n")
    return path


def pacing(workdir: Path, quick: bool, log: Callable[[str], None]) -> Scenario:
    cases = QUICK_CASES if quick else CASES
    scenario = Scenario(
        "pacing",
        "Pacing by RPM, ITPM and OTPM",
        "The simulator enforces one limit at a time as the API does (`--rpm`, `--itpm` or `--otpm`: a token "
        "bucket of the per-minute limit, full at the start, refilled continuously; input tokens counted "
        "at the start, output tokens held at max_tokens and given back down to the reply's length at the "
        f"end), `--ttft {TTFT_S} --tokens-per-s 0`; batchstream runs with default flags and "
        f"`-c {CONCURRENCY}`, learning the limit from the headers. The ideal is the fastest the bucket lets "
        "the work through: the full bucket at once, the rest at limit/60 a second, plus one reply's "
        "latency. A run's time is from its first request reaching the simulator to the client's exit. "
        "Goals: within 10% of the ideal (efficiency = ideal / time >= 0.91), under 1% of requests "
        "answered 429.",
    )
    for case in cases:
        name = f"pacing by {case.label}"
        work = workdir / f"pacing-{case.knob}"
        work.mkdir(parents=True, exist_ok=True)
        source = _write_input(work / "input.jsonl", case)
        knobs = {case.knob: case.limit, "ttft": TTFT_S, "tokens_per_s": 0}
        knobs["reply_tokens"] = f"{case.reply_tokens},{case.reply_tokens}"
        with Simulator(work, **knobs) as sim:
            log(f"{name}: {case.items} items, {case.knob} {case.limit:,}")
            output = work / "bs.results.jsonl"
            run = run_client(batchstream_argv(source, output, sim.url, CONCURRENCY), cwd=work, simulator=sim)
            stats = sim.stats()
        results = read_results(output)
        requests = int(stats["requests"])
        throttled = int(stats["by_status"].get("429", 0))
        share = throttled / requests if requests else 0.0
        active = run.wall_s - (run.first_request_s or 0.0)
        ideal = case.ideal_s()
        efficiency = ideal / active if active else 0.0
        every_item = results.ok == case.items
        scenario.rows.append(
            Row(
                scenario=name,
                tool="batchstream",
                items=case.items,
                events=results.output_tokens,
                wall_s=run.wall_s,
                cpu_s=run.cpu_s,
                peak_rss_mb=run.peak_rss_mb,
                goal=f"{active:.1f} s, ideal {ideal:.1f} s: efficiency {efficiency:.2f} (>= 0.91); "
                f"429s {100 * share:.2f}% (< 1%)" + ("" if every_item else f"; {results.ok} ok"),
                met=every_item and efficiency >= 1 / 1.1 and share < 0.01,
            )
        )
        scenario.notes.append(
            f"{name}: {case.items} items charging {case.charge():,} each against {case.limit:,} a minute "
            f"(max_tokens {case.max_tokens}); {requests:,} requests, {throttled} answered 429; "
            f"{results.ok:,} ok; first request {run.first_request_s or 0:.2f} s after launch"
        )
    return scenario
