"""The scenarios: each starts its own simulator process and measures batchstream against the naive pattern."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .harness import (
    PYTHON,
    BenchError,
    Measured,
    Simulator,
    batchstream_argv,
    drop_last_lines,
    naive_argv,
    read_results,
    run_client,
    startup_cpu,
    write_input,
    write_tool_input,
)
from .report import Row, Scenario


@dataclass
class Context:
    workdir: Path
    quick: bool
    startup_cpu_s: float | None = None

    def dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _row(scenario: str, tool: str, items: int, events: int, run: Measured, **extra: Any) -> Row:
    return Row(
        scenario=scenario,
        tool=tool,
        items=items,
        events=events,
        wall_s=run.wall_s,
        cpu_s=run.cpu_s,
        peak_rss_mb=run.peak_rss_mb,
        **extra,
    )


def _expect(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise BenchError(f"{what}: expected {expected}, got {got}")


def _median_run(runs: list[Measured]) -> Measured:
    return sorted(runs, key=lambda run: run.cpu_s)[len(runs) // 2]


def _startup_note(ctx: Context, scenario: Scenario, events: int, cpu_s: float) -> None:
    if ctx.startup_cpu_s is not None:
        net = cpu_s - ctx.startup_cpu_s
        scenario.notes.append(
            f"batchstream without start-up (interpreter + imports, {ctx.startup_cpu_s:.2f} s CPU, paid by "
            "both "
            f"tools): {net:.2f} s CPU = {1e6 * net / events:.1f} µs/event"
        )


# -- 1. many short replies (the headline) -----------------------------------------------------------------


def many_short(ctx: Context) -> Scenario:
    items, tokens, concurrency = 1000, 200, 100
    repeats = 1 if ctx.quick else 3
    name = "many short replies"
    scenario = Scenario(
        "many_short",
        "Many short replies (headline)",
        f"{items:,} items x {tokens} text deltas, concurrency {concurrency}; simulator `--ttft 0 "
        f"--tokens-per-s 0 --reply-tokens {tokens},{tokens}`. batchstream runs {repeats}x (median CPU "
        "shown), naive once. Goal: client CPU <= 0.2x the naive pattern.",
    )
    work = ctx.dir("many_short")
    source = write_input(work / "input.jsonl", items)
    with Simulator(work, ttft=0, tokens_per_s=0, reply_tokens=f"{tokens},{tokens}") as sim:
        runs = []
        for attempt in range(repeats):
            log(f"{name}: batchstream run {attempt + 1}/{repeats}")
            output = work / f"bs{attempt}.results.jsonl"
            sim.reset()
            runs.append(
                run_client(batchstream_argv(source, output, sim.url, concurrency), cwd=work, simulator=sim)
            )
            ours = read_results(output, keep_texts=True)
            _expect("batchstream ok items", ours.ok, items)
        log(f"{name}: naive run")
        sim.reset()
        naive_out = work / "naive.results.jsonl"
        naive = run_client(naive_argv(source, naive_out, sim.url, concurrency), cwd=work, simulator=sim)
        theirs = read_results(naive_out, keep_texts=True)
    _expect("naive ok items", theirs.ok, items)
    if ours.texts != theirs.texts:
        raise BenchError("batchstream and the naive client recorded different reply texts")
    events = ours.output_tokens
    run = _median_run(runs)
    ratio = run.cpu_s / naive.cpu_s
    scenario.rows += [
        _row(
            name,
            "batchstream",
            items,
            events,
            run,
            ratio=ratio,
            goal=f"CPU ratio <= 0.20 ({ratio:.2f})",
            met=ratio <= 0.20,
        ),
        _row(name, "naive SDK pattern", items, theirs.output_tokens, naive, ratio=1.0),
    ]
    spread = ", ".join(f"{r.cpu_s:.2f}" for r in runs)
    scenario.notes += [
        f"batchstream CPU per run: {spread} s; replies identical to the naive client's for all {items:,} "
        "items",
        f"CPU per item: batchstream {1e3 * run.cpu_s / items:.2f} ms, naive {1e3 * naive.cpu_s / items:.2f} "
        "ms "
        "(whole process / items)",
        f"simulator CPU for the whole scenario: {sim.cpu_s:.1f} s",
    ]
    _startup_note(ctx, scenario, events, run.cpu_s)
    return scenario


# -- 2. few long replies ----------------------------------------------------------------------------------


def few_long(ctx: Context) -> Scenario:
    items, tokens = 20, 5000
    name = "few long replies"
    scenario = Scenario(
        "few_long",
        "Few long replies",
        f"{items} items x {tokens:,} text deltas, concurrency {items}; simulator `--ttft 0 --tokens-per-s 0 "
        f"--reply-tokens {tokens},{tokens}`. No goal of its own: shows per-event cost once per-request "
        "overhead is negligible.",
    )
    work = ctx.dir("few_long")
    source = write_input(work / "input.jsonl", items)
    with Simulator(work, ttft=0, tokens_per_s=0, reply_tokens=f"{tokens},{tokens}") as sim:
        log(f"{name}: batchstream")
        ours_out = work / "bs.results.jsonl"
        ours_run = run_client(batchstream_argv(source, ours_out, sim.url, items), cwd=work, simulator=sim)
        sim.reset()
        log(f"{name}: naive")
        naive_out = work / "naive.results.jsonl"
        naive = run_client(naive_argv(source, naive_out, sim.url, items), cwd=work, simulator=sim)
    ours, theirs = read_results(ours_out, keep_texts=True), read_results(naive_out, keep_texts=True)
    _expect("batchstream ok items", ours.ok, items)
    _expect("naive ok items", theirs.ok, items)
    if ours.texts != theirs.texts:
        raise BenchError("batchstream and the naive client recorded different reply texts")
    ratio = ours_run.cpu_s / naive.cpu_s
    scenario.rows += [
        _row(name, "batchstream", items, ours.output_tokens, ours_run, ratio=ratio),
        _row(name, "naive SDK pattern", items, theirs.output_tokens, naive, ratio=1.0),
    ]
    _startup_note(ctx, scenario, ours.output_tokens, ours_run.cpu_s)
    if ctx.startup_cpu_s is not None:
        net = naive.cpu_s - ctx.startup_cpu_s
        scenario.notes.append(
            f"naive without start-up: {net:.2f} s CPU = {1e6 * net / theirs.output_tokens:.1f} µs/event"
        )
    return scenario


# -- 3. long tool-use input: accumulation linearity -------------------------------------------------------


def tool_input(ctx: Context) -> Scenario:
    name = "long tool-use input"
    sizes = [1000, 10_000, 100_000]
    scenario = Scenario(
        "tool_input",
        "Long tool-use input (accumulation linearity)",
        "In-process, synthetic events: one tool_use block whose input JSON (8 bytes per fragment) arrives as "
        "1k / 10k / 100k `input_json_delta` fragments, fed to `batchstream.accumulate.MessageAccumulator` "
        "(event dicts) and to the SDK's `anthropic.lib.streaming._messages.accumulate_event` (event models "
        "built beforehand), `bench/accumulators.py`. For these rows `wall s` and `CPU s` are the "
        "accumulation "
        "time alone and `µs/event` is per fragment. Linear means a flat time per fragment; the goal is a "
        "growth exponent (log time ratio / log size ratio, 1k to 100k) <= 1.2: 1.0 is linear, 2.0 quadratic. "
        "When the simulator can stream tool_use (`[[sim tool_input_bytes=N]]`), the same sizes also go over "
        "the wire, 100k fragments per client run (100 x 1k, 10 x 10k, 1 x 100k), through the CLI and the "
        "naive client; there the figure that matters is the CPU per fragment net of start-up.",
    )
    log(f"{name}: accumulators in a subprocess (sizes {sizes})")
    work = ctx.dir("tool_input")
    run = run_client(
        [PYTHON, "-m", "bench.accumulators", "--sizes", ",".join(map(str, sizes))], cwd=work, timeout=600
    )
    rows = orjson.loads(run.stdout)["rows"]
    for accumulator, label in (
        ("batchstream", "batchstream MessageAccumulator"),
        ("sdk", "SDK accumulate_event"),
    ):
        mine = [row for row in rows if row["accumulator"] == accumulator]
        first, last = mine[0], mine[-1]
        exponent = math.log(last["seconds"] / first["seconds"]) / math.log(
            last["fragments"] / first["fragments"]
        )
        ours = accumulator == "batchstream"
        for row in mine:
            is_last = row is last
            scenario.rows.append(
                Row(
                    scenario=name,
                    tool=f"{label} in-process ({row['fragments'] // 1000}k)",
                    events=row["fragments"],
                    wall_s=row["seconds"],
                    cpu_s=row["seconds"],
                    goal=f"exponent {exponent:.2f} (<= 1.2)" if is_last else "",
                    met=(exponent <= 1.2) if is_last and ours else None,
                )
            )
        per = ", ".join(f"{row['us_per_fragment']:.2f}" for row in mine)
        counts = ", ".join(f"{row['fragments']:,}" for row in mine)
        scenario.notes.append(
            f"in-process {label}: µs per fragment at {counts} fragments: {per}; growth exponent "
            f"{exponent:.2f}"
        )
    _tool_input_wire(ctx, scenario, name, sizes, work)
    return scenario


# The simulator cuts tool input JSON into fragments of 1 to 24 characters: 12.5 bytes on average.
_BYTES_PER_FRAGMENT = 12.5


def _tool_input_wire(ctx: Context, scenario: Scenario, name: str, sizes: list[int], work: Path) -> None:
    with Simulator(work, ttft=0, tokens_per_s=0) as sim:
        if not sim.sends_tool_use():
            scenario.notes.append(
                "the simulator cannot stream tool_use input yet, so this scenario is in-process only"
            )
            return
        per_run = max(sizes)
        naive_sizes = sizes if not ctx.quick else [size for size in sizes if size < per_run]
        net: dict[str, list[tuple[int, float]]] = {"batchstream": [], "naive SDK pattern": []}
        for size in sizes:
            items = per_run // size
            concurrency = min(items, 10)
            source = write_tool_input(work / f"tool{size}.jsonl", items, int(size * _BYTES_PER_FRAGMENT))
            clients = [("batchstream", batchstream_argv, work / f"bs{size}.results.jsonl")]
            if size in naive_sizes:
                clients.append(("naive SDK pattern", naive_argv, work / f"naive{size}.results.jsonl"))
            recorded = []
            for tool, make_argv, output in clients:
                log(f"{name}: {tool} over the wire, {items} x ~{size:,} fragments")
                sim.reset()
                measured = run_client(
                    make_argv(source, output, sim.url, concurrency), cwd=work, simulator=sim
                )
                results = read_results(output, keep_texts=True)
                _expect(f"{tool} ok items", results.ok, items)
                recorded.append(results.texts)
                fragments = results.output_tokens
                startup = ctx.startup_cpu_s or 0.0
                per_fragment = 1e6 * (measured.cpu_s - startup) / fragments
                net[tool].append((size, per_fragment))
                scenario.rows.append(
                    _row(
                        name,
                        f"{tool} wire ({size // 1000}k/item)",
                        items,
                        fragments,
                        measured,
                        goal=f"net {per_fragment:.1f} µs/fragment",
                    )
                )
            if len(recorded) == 2 and recorded[0] != recorded[1]:
                raise BenchError(f"batchstream and the naive client recorded different tool inputs ({size})")
        for tool, points in net.items():
            if not points:
                continue
            described = ", ".join(f"{size // 1000}k: {value:.1f}" for size, value in points)
            growth = points[-1][1] / points[0][1]
            scenario.notes.append(
                f"over the wire, {tool}: CPU per fragment net of start-up ({described} µs); "
                f"{growth:.1f}x from the smallest to the largest reply"
            )
            if tool == "batchstream" and len(points) > 1:
                last = next(row for row in reversed(scenario.rows) if row.tool.startswith("batchstream wire"))
                last.goal += f", {growth:.2f}x the 1k figure (<= 1.5)"
                last.met = growth <= 1.5
        if len(naive_sizes) < len(sizes):
            scenario.notes.append("--quick: the naive client skips the 100k-fragment reply (tens of seconds)")


# -- 4. 2,000 concurrent streams --------------------------------------------------------------------------


def concurrent_2000(ctx: Context) -> Scenario:
    items = concurrency = 2000
    tokens = 40
    repeats = 1 if ctx.quick else 2
    name = "2,000 concurrent"
    scenario = Scenario(
        "concurrent_2000",
        "2,000 concurrent streams",
        f"{items:,} items, concurrency {concurrency:,}; simulator `--ttft 1 --tokens-per-s 20 --reply-tokens "
        f"{tokens},{tokens}`, so every stream is open for about 3 s and all overlap. batchstream runs with "
        "`-q`, with progress lines (stderr a file: the default plain lines every 10 s) and with the tqdm bar "
        f"(stderr a pseudo-terminal), {repeats}x each (median CPU shown). Event-loop lag comes from a "
        "separate in-process `run_batch` run with a 10 ms sleep probe on the same loop "
        "(`bench/lagprobe.py`).",
    )
    work = ctx.dir("concurrent_2000")
    source = write_input(work / "input.jsonl", items)
    variants = (("-q", True, False), ("progress lines", False, False), ("tty bar", False, True))
    measured: dict[str, list[Measured]] = {label: [] for label, _, _ in variants}
    with Simulator(work, ttft=1, tokens_per_s=20, reply_tokens=f"{tokens},{tokens}") as sim:
        counter = 0
        for attempt in range(repeats):
            for label, quiet, tty in variants:
                counter += 1
                log(f"{name}: batchstream {label} ({attempt + 1}/{repeats})")
                sim.reset()
                output = work / f"bs{counter}.results.jsonl"
                argv = batchstream_argv(source, output, sim.url, concurrency, quiet=quiet)
                measured[label].append(run_client(argv, cwd=work, simulator=sim, tty=tty))
                _expect(f"batchstream {label} ok items", read_results(output).ok, items)
        log(f"{name}: lag probe (in-process run_batch)")
        sim.reset()
        probe_argv = [PYTHON, "-m", "bench.lagprobe", str(source), "-o", str(work / "probe.results.jsonl")]
        probe_run = run_client([*probe_argv, "--base-url", sim.url, "-c", str(concurrency)], cwd=work)
        probe = orjson.loads(probe_run.stdout)
        _expect("lag probe ok items", probe["ok"], items)
        log(f"{name}: naive")
        sim.reset()
        naive_out = work / "naive.results.jsonl"
        naive = run_client(naive_argv(source, naive_out, sim.url, concurrency), cwd=work, simulator=sim)
    theirs = read_results(naive_out)
    _expect("naive ok items", theirs.ok, items)
    events = read_results(work / "bs1.results.jsonl").output_tokens
    quiet_cpu = statistics.median(run.cpu_s for run in measured["-q"])
    for label, _, _ in variants:
        run = _median_run(measured[label])
        share = (run.cpu_s - quiet_cpu) / run.cpu_s
        goal = "" if label == "-q" else f"display CPU share {100 * share:+.1f}%"
        scenario.rows.append(
            _row(name, f"batchstream {label}", items, events, run, ratio=run.cpu_s / naive.cpu_s, goal=goal)
        )
    scenario.rows.append(
        _row(
            name,
            "batchstream lag probe",
            items,
            events,
            probe_run,
            goal=f"loop lag max {probe['max_lag_ms']:.0f} ms, p99 {probe['p99_lag_ms']:.1f} ms",
        )
    )
    scenario.rows.append(_row(name, "naive SDK pattern", items, theirs.output_tokens, naive, ratio=1.0))
    ideal = 1 + (tokens - 1) / 20
    for label, _, _ in variants:
        cpus = ", ".join(f"{run.cpu_s:.2f}" for run in measured[label])
        scenario.notes.append(f"batchstream {label}: CPU per run {cpus} s")
    scenario.notes += [
        "display CPU share = (CPU with display - median CPU with -q) / CPU with display; differences of a "
        "few "
        "percent are within run-to-run noise",
        f"event-loop lag over {probe['samples']:,} probe sleeps of 10 ms: max {probe['max_lag_ms']:.1f} ms "
        f"(at {probe['max_at_s']:.1f} s into the run), p99 {probe['p99_lag_ms']:.1f} ms, p50 "
        f"{probe['p50_lag_ms']:.1f} ms, {probe['over_50ms']} sleeps overshot by > 50 ms",
        f"one stream lasts about {ideal:.2f} s (1 s to first token + {tokens - 1} x 50 ms); batchstream's "
        f"first request reached the simulator {measured['-q'][0].first_request_s or 0:.2f} s after launch",
        "the naive client's default httpx pool allows 1,000 connections, so half its streams wait for a "
        "connection (about two rounds of streams)",
    ]
    return scenario


# -- 5. 200,000-line input and resume ---------------------------------------------------------------------


def big_input(ctx: Context) -> Scenario:
    lines = 20_000 if ctx.quick else 200_000
    naive_lines = 5_000 if ctx.quick else 10_000
    concurrency, tail = 100, 100
    name = f"{lines // 1000}k-line input"
    scenario = Scenario(
        "big_input",
        f"{lines:,}-line input, then resume",
        f"{lines:,} items, concurrency {concurrency}; simulator `--ttft 0 --tokens-per-s 0 --reply-tokens "
        "1,3`. "
        f"Then the same command again over the complete results file (everything done: time until it exits), "
        f"and again after removing the last {tail} result lines (time until its first request reaches the "
        f"simulator, and until it is done). Goals: peak RSS < 200 MB; resume start-up < 3 s. The naive "
        f"pattern runs on the first {naive_lines:,} lines only (it would take far too long on all of them, "
        "holds every line and result in memory, and cannot resume).",
    )
    work = ctx.dir("big_input")
    source = write_input(work / "input.jsonl", lines)
    naive_source = write_input(work / "naive-input.jsonl", naive_lines)
    output = work / "bs.results.jsonl"
    with Simulator(work, ttft=0, tokens_per_s=0, reply_tokens="1,3") as sim:
        argv = batchstream_argv(source, output, sim.url, concurrency)
        log(f"{name}: batchstream full run (the slow one)")
        full = run_client(argv, cwd=work, simulator=sim, timeout=1800)
        done = read_results(output)
        _expect("batchstream ok items", done.ok, lines)
        log(f"{name}: resume with everything done")
        sim.reset()
        resume_done = run_client(argv, cwd=work, simulator=sim)
        _expect("requests sent by a resume with nothing to do", sim.requests(), 0)
        log(f"{name}: resume with the last {tail} results removed")
        drop_last_lines(output, tail)
        sim.reset()
        resume_tail = run_client(argv, cwd=work, simulator=sim)
        _expect("requests sent by the resume", sim.requests(), tail)
        _expect("results after the resume", read_results(output).ok, lines)
        log(f"{name}: naive on {naive_lines:,} lines")
        sim.reset()
        naive_out = work / "naive.results.jsonl"
        naive = run_client(naive_argv(naive_source, naive_out, sim.url, concurrency), cwd=work, simulator=sim)
    theirs = read_results(naive_out)
    _expect("naive ok items", theirs.ok, naive_lines)
    per_item_ours = full.cpu_s / lines
    per_item_naive = naive.cpu_s / naive_lines
    first = resume_tail.first_request_s
    scenario.rows += [
        _row(
            name,
            "batchstream",
            lines,
            done.output_tokens,
            full,
            ratio=per_item_ours / per_item_naive,
            goal=f"peak RSS < 200 MB ({full.peak_rss_mb:.0f})",
            met=full.peak_rss_mb < 200,
        ),
        _row(
            name,
            "batchstream resume, all done",
            lines,
            0,
            resume_done,
            goal=f"done < 3 s ({resume_done.wall_s:.2f})",
            met=resume_done.wall_s < 3,
        ),
        _row(
            name,
            f"batchstream resume, {tail} left",
            lines,
            None,
            resume_tail,
            goal="first request < 3 s (" + ("none" if first is None else f"{first:.2f}") + ")",
            met=first is not None and first < 3,
        ),
        _row(
            name,
            f"naive SDK pattern ({naive_lines // 1000}k lines)",
            naive_lines,
            theirs.output_tokens,
            naive,
        ),
    ]
    scenario.notes += [
        "ratio for the full run is CPU per item against the naive run's CPU per item "
        f"({1e3 * per_item_ours:.2f} "
        f"ms vs {1e3 * per_item_naive:.2f} ms)",
        f"resume with {tail} left: first request after {first or 0:.2f} s, done after "
        f"{resume_tail.wall_s:.2f} s "
        f"({resume_tail.cpu_s:.2f} s CPU, peak RSS {resume_tail.peak_rss_mb:.0f} MB)",
        f"resume with everything done: {resume_done.cpu_s:.2f} s CPU, peak RSS "
        f"{resume_done.peak_rss_mb:.0f} MB",
        f"results file: {output.stat().st_size / 1e6:.0f} MB for {lines:,} lines",
    ]
    if ctx.startup_cpu_s is not None:
        scenario.notes.append(
            f"of each resume's CPU, about {ctx.startup_cpu_s:.2f} s is interpreter start-up and imports"
        )
    return scenario


# -- 6. wall-time efficiency ------------------------------------------------------------------------------


def efficiency(ctx: Context) -> Scenario:
    latency, tokens = 0.5, 5
    scenario = Scenario(
        "efficiency",
        "Wall-time efficiency",
        f"Simulator with a fixed latency (`--ttft {latency} --tokens-per-s 0 --reply-tokens "
        f"{tokens},{tokens}`), "
        "items = 4 x concurrency. The ideal is ceil(items / concurrency) x latency; the run's time is "
        "measured "
        "from its first request reaching the simulator to the client's exit (start-up excluded; it is the "
        "`first request` figure). Goal: within 10% of ideal.",
    )
    work = ctx.dir("efficiency")
    for concurrency in (10, 100, 1000):
        items = 4 * concurrency
        name = f"efficiency c={concurrency}"
        source = write_input(work / f"input{concurrency}.jsonl", items)
        ideal = math.ceil(items / concurrency) * latency
        with Simulator(work, ttft=latency, tokens_per_s=0, reply_tokens=f"{tokens},{tokens}") as sim:
            log(f"{name}: batchstream")
            ours_out = work / f"bs{concurrency}.results.jsonl"
            argv = batchstream_argv(source, ours_out, sim.url, concurrency)
            ours_run = run_client(argv, cwd=work, simulator=sim)
            sim.reset()
            log(f"{name}: naive")
            naive_out = work / f"naive{concurrency}.results.jsonl"
            naive = run_client(naive_argv(source, naive_out, sim.url, concurrency), cwd=work, simulator=sim)
        for tool, run, path, is_ours in (
            ("batchstream", ours_run, ours_out, True),
            ("naive SDK pattern", naive, naive_out, False),
        ):
            results = read_results(path)
            _expect(f"{tool} ok items", results.ok, items)
            active = run.wall_s - (run.first_request_s or 0.0)
            factor = active / ideal
            scenario.rows.append(
                _row(
                    name,
                    tool,
                    items,
                    results.output_tokens,
                    run,
                    ratio=run.cpu_s / naive.cpu_s,
                    goal=f"{active:.2f} s = {factor:.2f}x ideal {ideal:.1f} s",
                    met=(factor <= 1.10) if is_ours else None,
                )
            )
            scenario.notes.append(
                f"{name} {tool}: first request {run.first_request_s or 0:.2f} s after launch, then "
                f"{active:.2f} s to exit; {run.cpu_s:.2f} s CPU"
            )
    return scenario


# -- 7. rate limits ---------------------------------------------------------------------------------------


def rate_limit(ctx: Context) -> Scenario:
    rpm = 1200
    items = 1500 if ctx.quick else 2400
    concurrency, ttft, tokens = 64, 0.2, 20
    name = f"rate limit rpm={rpm}"
    scenario = Scenario(
        "rate_limit",
        "Rate limits",
        f"Simulator `--rpm {rpm} --ttft {ttft} --reply-tokens {tokens},{tokens}` (a token bucket that starts "
        f"full: {rpm} requests at once, then {rpm // 60}/s), {items:,} items, concurrency {concurrency}. "
        "Allowed requests in a run of T seconds = rpm + rpm/60 x T (T from the first request to exit); "
        "achieved "
        "= items answered 200. Goals: < 5% of requests answered 429; achieved >= 90% of allowed. The naive "
        "pattern (max_retries=0) is shown for contrast: it does not retry, so a 429 is a lost item.",
    )
    work = ctx.dir("rate_limit")
    source = write_input(work / "input.jsonl", items)
    with Simulator(work, rpm=rpm, ttft=ttft, reply_tokens=f"{tokens},{tokens}") as sim:
        runs = []
        for tool, argv in (
            ("batchstream", batchstream_argv(source, work / "bs.results.jsonl", sim.url, concurrency)),
            ("naive SDK pattern", naive_argv(source, work / "naive.results.jsonl", sim.url, concurrency)),
        ):
            log(f"{name}: {tool}")
            sim.reset()
            run = run_client(argv, cwd=work, simulator=sim, check=False)
            stats = sim.stats()
            runs.append((tool, run, stats))
    for tool, run, stats in runs:
        path = work / ("bs.results.jsonl" if tool == "batchstream" else "naive.results.jsonl")
        results = read_results(path)
        requests = int(stats["requests"])
        throttled = int(stats["by_status"].get("429", 0))
        share = throttled / requests if requests else 0.0
        active = run.wall_s - (run.first_request_s or 0.0)
        allowed = min(items, rpm + rpm / 60 * active)
        achieved = int(stats["by_status"].get("200", 0))
        fraction = achieved / allowed
        is_ours = tool == "batchstream"
        scenario.rows.append(
            _row(
                name,
                tool,
                items,
                results.output_tokens,
                run,
                goal=f"429s {100 * share:.1f}% (< 5%), achieved {100 * fraction:.0f}% of allowed (>= 90%)",
                met=(share < 0.05 and fraction >= 0.90) if is_ours else None,
            )
        )
        scenario.notes.append(
            f"{tool}: {requests:,} requests, {throttled:,} answered 429, {results.ok:,} items ok and "
            f"{results.errors:,} recorded as errors; {active:.1f} s from first request to exit; achieved "
            f"{60 * achieved / active:,.0f} req/min against {60 * allowed / active:,.0f} allowed on average "
            "over "
            f"the run ({rpm:,}/min sustained after the initial burst)"
        )
        if is_ours and results.ok != items:
            scenario.notes.append(f"batchstream did not finish every item ({results.ok}/{items} ok)")
    return scenario


SCENARIOS: dict[str, Callable[[Context], Scenario]] = {
    "many_short": many_short,
    "few_long": few_long,
    "tool_input": tool_input,
    "concurrent_2000": concurrent_2000,
    "big_input": big_input,
    "efficiency": efficiency,
    "rate_limit": rate_limit,
}


def measure_startup(ctx: Context) -> None:
    runs = [startup_cpu(ctx.dir("startup")) for _ in range(3)]
    ctx.startup_cpu_s = statistics.median(run.cpu_s for run in runs)
