"""The scenarios: each starts its own simulator process and measures batchstream against the naive pattern."""

from __future__ import annotations

import math
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
    ResultsSummary,
    Simulator,
    batchstream_argv,
    drop_last_lines,
    read_results,
    run_client,
    run_naive,
    startup_cpu,
    write_input,
    write_tool_input,
)
from .pacing import pacing as _pacing
from .report import Row, Scenario

NAIVE = "naive SDK pattern"


@dataclass
class Context:
    workdir: Path
    quick: bool
    slow: bool = False
    startup_cpu_s: float | None = None

    def dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _row(scenario: str, tool: str, items: int | None, events: int | None, run: Measured, **extra: Any) -> Row:
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


def _naive_failures(scenario: Scenario, row: Row, results: ResultsSummary, items: int) -> None:
    """The naive client records a failed item and goes on (exit 1): report it rather than stop."""
    failed = items - results.ok
    if not failed:
        return
    row.goal = f"{failed:,} of {items:,} items failed" + (f"; {row.goal}" if row.goal else "")
    kinds = "; ".join(f"{count} x {kind}" for kind, count in results.error_kinds.most_common(2))
    scenario.notes.append(f"{row.scenario}, {row.tool}: {failed:,} of {items:,} items failed: {kinds}")


def _same_replies(ours: ResultsSummary, theirs: ResultsSummary) -> None:
    """Every item both clients completed must have the same recorded reply (text and tool inputs)."""
    different = sorted(
        key for key in ours.texts.keys() & theirs.texts.keys() if ours.texts[key] != theirs.texts[key]
    )
    if different:
        raise BenchError(f"batchstream and the naive client recorded different replies, e.g. {different[:5]}")


def _net_notes(ctx: Context, scenario: Scenario, ours: tuple[float, int], naive: tuple[float, int]) -> None:
    """CPU per event net of the start-up both clients pay, as (CPU seconds, events) per tool."""
    if ctx.startup_cpu_s is None:
        return
    for tool, (cpu_s, events) in (("batchstream", ours), ("naive", naive)):
        if events:
            net = cpu_s - ctx.startup_cpu_s
            scenario.notes.append(
                f"{tool} without start-up: {net:.2f} s CPU = {1e6 * net / events:.1f} µs/event"
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
        f"--tokens-per-s 0 --reply-tokens {tokens},{tokens}`. batchstream runs {repeats}x (the median CPU "
        "is shown), the naive client once. Goal: client CPU <= 0.25x the naive pattern's, with every "
        "request through the SDK's own HTTP stack.",
    )
    work = ctx.dir("many_short")
    source = write_input(work / "input.jsonl", items)
    runs: list[Measured] = []
    with Simulator(work, ttft=0, tokens_per_s=0, reply_tokens=f"{tokens},{tokens}") as sim:
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
        naive = run_naive(source, naive_out, sim, concurrency, work)
    theirs = read_results(naive_out, keep_texts=True)
    _same_replies(ours, theirs)
    run = _median_run(runs)
    ratio = run.cpu_s / naive.cpu_s
    naive_row = _row(name, NAIVE, items, theirs.output_tokens, naive, ratio=1.0)
    scenario.rows += [
        _row(
            name,
            "batchstream",
            items,
            ours.output_tokens,
            run,
            ratio=ratio,
            goal=f"CPU ratio {ratio:.2f} (<= 0.25)",
            met=ratio <= 0.25,
        ),
        naive_row,
    ]
    _naive_failures(scenario, naive_row, theirs, items)
    spread = ", ".join(f"{r.cpu_s:.2f}" for r in runs)
    scenario.notes += [
        f"batchstream CPU per run: {spread} s; its replies match the naive client's item for item",
        f"CPU per item (whole process / items): batchstream {1e3 * run.cpu_s / items:.2f} ms, naive "
        f"{1e3 * naive.cpu_s / items:.2f} ms",
    ]
    _net_notes(ctx, scenario, (run.cpu_s, ours.output_tokens), (naive.cpu_s, theirs.output_tokens))
    if ctx.startup_cpu_s is not None:
        net_ratio = (run.cpu_s - ctx.startup_cpu_s) / (naive.cpu_s - ctx.startup_cpu_s)
        scenario.notes.append(
            f"ratio without the start-up both pay ({ctx.startup_cpu_s:.2f} s CPU: Python, the anthropic "
            f"SDK's imports): {net_ratio:.2f}"
        )
    scenario.notes.append(f"simulator CPU over the scenario: {sim.cpu_s:.1f} s")
    return scenario


# -- 2. few long replies ----------------------------------------------------------------------------------


def few_long(ctx: Context) -> Scenario:
    items, tokens = 20, 5000
    name = "few long replies"
    scenario = Scenario(
        "few_long",
        "Few long replies",
        f"{items} items x {tokens:,} text deltas, concurrency {items}; simulator `--ttft 0 --tokens-per-s 0 "
        f"--reply-tokens {tokens},{tokens}`. No goal of its own: the per-event cost once per-request "
        "overhead is negligible, and a check that long texts are not assembled quadratically.",
    )
    work = ctx.dir("few_long")
    source = write_input(work / "input.jsonl", items, max_tokens=2 * tokens)
    with Simulator(work, ttft=0, tokens_per_s=0, reply_tokens=f"{tokens},{tokens}") as sim:
        log(f"{name}: batchstream")
        ours_out = work / "bs.results.jsonl"
        ours_run = run_client(batchstream_argv(source, ours_out, sim.url, items), cwd=work, simulator=sim)
        sim.reset()
        log(f"{name}: naive")
        naive_out = work / "naive.results.jsonl"
        naive = run_naive(source, naive_out, sim, items, work)
    ours, theirs = read_results(ours_out, keep_texts=True), read_results(naive_out, keep_texts=True)
    _expect("batchstream ok items", ours.ok, items)
    _expect("batchstream events", ours.output_tokens, items * tokens)
    _same_replies(ours, theirs)
    naive_row = _row(name, NAIVE, items, theirs.output_tokens, naive, ratio=1.0)
    scenario.rows += [
        _row(name, "batchstream", items, ours.output_tokens, ours_run, ratio=ours_run.cpu_s / naive.cpu_s),
        naive_row,
    ]
    _naive_failures(scenario, naive_row, theirs, items)
    _net_notes(ctx, scenario, (ours_run.cpu_s, ours.output_tokens), (naive.cpu_s, theirs.output_tokens))
    return scenario


# -- 3. long tool-use input: accumulation linearity -------------------------------------------------------

# The simulator cuts tool input JSON into fragments of 1 to 24 characters: 12.5 bytes on average.
_BYTES_PER_FRAGMENT = 12.5


def tool_input(ctx: Context) -> Scenario:
    name = "long tool-use input"
    sizes = [1000, 10_000, 100_000]
    scenario = Scenario(
        "tool_input",
        "Long tool-use input (accumulation linearity)",
        "In-process (`bench/accumulators.py`), synthetic events: one tool_use block whose input JSON (8 "
        "bytes per fragment) arrives as 1k / 10k / 100k `input_json_delta` fragments, fed to "
        "`batchstream.transport.accumulate.MessageAccumulator` (event dicts) and to the SDK's "
        "`anthropic.lib.streaming._messages.accumulate_event` (event models built beforehand). For these "
        "rows `wall s` and `CPU s` are the accumulation time alone and `µs/event` is per fragment. Linear "
        "means a flat time per fragment; the goal is a growth exponent (log time ratio / log size ratio, "
        "1k to 100k) <= 1.2: 1.0 is linear, 2.0 quadratic. When the simulator can stream tool_use (`[[sim "
        "tool_input_bytes=N]]`), batchstream's CLI also receives the same sizes over the wire, about 300k "
        "fragments per run (300 x 1k, 30 x 10k, 3 x 100k), shown as CPU per fragment net of start-up: "
        "supporting evidence without a verdict, as it includes per-request costs (which favour the larger "
        "replies) and the start-up subtraction leaves run-to-run noise of about 1 µs. The naive client "
        "joins the wire runs only with `--slow` (one 100k-fragment reply takes it minutes).",
    )
    log(f"{name}: accumulators in a subprocess (sizes {sizes})")
    work = ctx.dir("tool_input")
    run = run_client(
        [PYTHON, "-m", "bench.accumulators", "--sizes", ",".join(map(str, sizes))], cwd=work, timeout=900
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
                    met=(exponent <= 1.2) if is_last and accumulator == "batchstream" else None,
                )
            )
        per = ", ".join(f"{row['us_per_fragment']:.2f}" for row in mine)
        counts = ", ".join(f"{row['fragments']:,}" for row in mine)
        scenario.notes.append(f"in-process, {label}: µs per fragment at {counts} fragments: {per}")
    _tool_input_wire(ctx, scenario, name, sizes, work)
    return scenario


def _tool_input_wire(ctx: Context, scenario: Scenario, name: str, sizes: list[int], work: Path) -> None:
    with Simulator(work, ttft=0, tokens_per_s=0) as sim:
        if not sim.sends_tool_use():
            scenario.notes.append("the simulator cannot stream tool_use input yet: in-process figures only")
            return
        per_run = 3 * max(sizes)
        net: dict[str, list[tuple[int, float]]] = {"batchstream": [], NAIVE: []}
        for size in sizes:
            items = per_run // size
            concurrency = min(items, 10)
            source = write_tool_input(work / f"tool{size}.jsonl", items, int(size * _BYTES_PER_FRAGMENT))
            recorded: list[ResultsSummary] = []
            for tool in ("batchstream", NAIVE) if ctx.slow else ("batchstream",):
                log(f"{name}: {tool} over the wire, {items} x ~{size:,} fragments")
                sim.reset()
                if tool == "batchstream":
                    output = work / f"bs{size}.results.jsonl"
                    argv = batchstream_argv(source, output, sim.url, concurrency)
                    measured = run_client(argv, cwd=work, simulator=sim)
                else:
                    output = work / f"naive{size}.results.jsonl"
                    measured = run_naive(source, output, sim, concurrency, work, timeout=1800)
                results = read_results(output, keep_texts=True)
                _expect(f"{tool} ok items", results.ok, items)
                recorded.append(results)
                fragments = results.output_tokens
                per_fragment = 1e6 * (measured.cpu_s - (ctx.startup_cpu_s or 0.0)) / fragments
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
            if len(recorded) == 2:
                _same_replies(recorded[0], recorded[1])
        for tool, points in net.items():
            if len(points) < 2:
                continue
            described = ", ".join(f"{size // 1000}k: {value:.1f}" for size, value in points)
            growth = points[-1][1] / points[0][1]
            scenario.notes.append(
                f"over the wire, {tool}: CPU per fragment net of start-up {described} µs ({growth:.2f}x "
                "from 1k to 100k fragments per reply)"
            )


# -- 4. 2,000 concurrent streams --------------------------------------------------------------------------


def concurrent_2000(ctx: Context) -> Scenario:
    items = concurrency = 2000
    tokens = 40
    name = "2,000 concurrent"
    scenario = Scenario(
        "concurrent_2000",
        "2,000 concurrent streams",
        f"{items:,} items, concurrency {concurrency:,}; simulator `--ttft 1 --tokens-per-s 20 "
        f"--reply-tokens {tokens},{tokens}`, so each stream stays open about 3 s and they all overlap. "
        "batchstream runs once with `-q`, once with progress lines (stderr a file: plain lines every 10 s, "
        "the default) and once with the tqdm bar (stderr a pseudo-terminal); for those rows the "
        "display's share is (CPU with display - CPU with -q) / CPU with display, within run-to-run "
        "noise. The goals are judged on a separate in-process `run_batch` run (`bench/lagprobe.py`) "
        "with the tqdm bar on a pseudo-terminal: a probe task on the same loop sleeps 10 ms at a time "
        "and records each overshoot (the event-loop lag), and every call into the progress display is "
        "timed on the loop thread's CPU clock (the display's CPU share, measured directly); its row's "
        "CPU includes the probe. Goals: loop lag never over 100 ms; the display under 2% of the CPU.",
    )
    work = ctx.dir("concurrent_2000")
    source = write_input(work / "input.jsonl", items)
    variants = (("-q", True, False), ("progress lines", False, False), ("tty bar", False, True))
    measured: dict[str, Measured] = {}
    with Simulator(work, ttft=1, tokens_per_s=20, reply_tokens=f"{tokens},{tokens}") as sim:
        for index, (label, quiet, tty) in enumerate(variants):
            log(f"{name}: batchstream {label}")
            sim.reset()
            output = work / f"bs{index}.results.jsonl"
            argv = batchstream_argv(source, output, sim.url, concurrency, quiet=quiet)
            measured[label] = run_client(argv, cwd=work, simulator=sim, tty=tty)
            _expect(f"batchstream {label} ok items", read_results(output).ok, items)
        log(f"{name}: lag probe (in-process run_batch)")
        sim.reset()
        probe_argv = [
            *(PYTHON, "-m", "bench.lagprobe", str(source), "-o", str(work / "probe.results.jsonl")),
            *("--display", "bar"),
        ]
        probe_run = run_client([*probe_argv, "--base-url", sim.url, "-c", str(concurrency)], cwd=work)
        probe = orjson.loads(probe_run.stdout)
        _expect("lag probe ok items", probe["ok"], items)
        log(f"{name}: naive")
        sim.reset()
        naive_out = work / "naive.results.jsonl"
        naive = run_naive(source, naive_out, sim, concurrency, work)
    theirs = read_results(naive_out)
    events = read_results(work / "bs0.results.jsonl").output_tokens
    quiet_cpu = measured["-q"].cpu_s
    display_share = 100 * probe["display_cpu_s"] / probe["run_cpu_s"]
    for label, run in measured.items():
        share = (run.cpu_s - quiet_cpu) / run.cpu_s
        goal = "" if label == "-q" else f"CPU difference from -q {100 * share:+.1f}%"
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
            goal=f"loop lag max {probe['max_lag_ms']:.0f} ms (<= 100), p99 {probe['p99_lag_ms']:.0f} ms; "
            f"display {display_share:.2f}% of CPU (< 2)",
            met=probe["max_lag_ms"] <= 100 and display_share < 2,
        )
    )
    naive_row = _row(name, NAIVE, items, theirs.output_tokens, naive, ratio=1.0)
    scenario.rows.append(naive_row)
    _naive_failures(scenario, naive_row, theirs, items)
    stream_s = 1 + (tokens - 1) / 20
    first = measured["-q"].first_request_s or 0.0
    scenario.notes += [
        f"event-loop lag over {probe['samples']:,} probe sleeps of 10 ms: max {probe['max_lag_ms']:.0f} ms "
        f"(at {probe['max_at_s']:.1f} s into the run), p99 {probe['p99_lag_ms']:.0f} ms, p50 "
        f"{probe['p50_lag_ms']:.1f} ms; {probe['over_50ms']} sleeps overshot by more than 50 ms",
        f"the tqdm bar took {1000 * probe['display_cpu_s']:.0f} ms of the run's "
        f"{probe['run_cpu_s']:.2f} s CPU ({display_share:.2f}%)",
        f"one stream lasts about {stream_s:.2f} s (1 s to the first token, then {tokens - 1} x 50 ms); with "
        f"-q, batchstream's first request came {first:.2f} s after launch and it exited after "
        f"{measured['-q'].wall_s:.2f} s",
        "the naive client's default httpx pool allows 1,000 connections, so half its streams wait for a "
        "free one",
    ]
    return scenario


# -- 5. 200,000-line input and resume ---------------------------------------------------------------------


def big_input(ctx: Context) -> Scenario:
    lines = 20_000 if ctx.quick else 200_000
    naive_lines = 5_000
    concurrency, tail = 100, 100
    name = f"{lines // 1000}k-line input"
    scenario = Scenario(
        "big_input",
        f"{lines:,}-line input, then resume",
        f"{lines:,} items, concurrency {concurrency}; simulator `--ttft 0 --tokens-per-s 0 --reply-tokens "
        "1,3`. Then the same command again over the complete results file (nothing to do: time until it "
        f"exits), and again after removing the last {tail} result lines (time until its first request "
        "reaches the simulator, and until it exits). Goals: peak RSS < 200 MB; resume start-up < 3 s. The "
        f"naive pattern runs on the first {naive_lines:,} lines only: it takes several times batchstream's "
        "CPU per item, holds every line and result in memory, and cannot resume.",
    )
    work = ctx.dir("big_input")
    source = write_input(work / "input.jsonl", lines)
    naive_source = write_input(work / "naive-input.jsonl", naive_lines)
    output = work / "bs.results.jsonl"
    with Simulator(work, ttft=0, tokens_per_s=0, reply_tokens="1,3") as sim:
        argv = batchstream_argv(source, output, sim.url, concurrency)
        log(f"{name}: batchstream, the full run (the slow one)")
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
        naive = run_naive(naive_source, naive_out, sim, concurrency, work)
    theirs = read_results(naive_out)
    per_item_ours = full.cpu_s / lines
    per_item_naive = naive.cpu_s / naive_lines
    first = resume_tail.first_request_s
    naive_row = _row(
        name, f"{NAIVE} ({naive_lines // 1000}k lines)", naive_lines, theirs.output_tokens, naive
    )
    scenario.rows += [
        _row(
            name,
            "batchstream",
            lines,
            done.output_tokens,
            full,
            ratio=per_item_ours / per_item_naive,
            goal=f"peak RSS {full.peak_rss_mb:.0f} MB (< 200)",
            met=full.peak_rss_mb < 200,
        ),
        _row(
            name,
            "batchstream resume, all done",
            lines,
            0,
            resume_done,
            goal=f"done in {resume_done.wall_s:.2f} s (< 3)",
            met=resume_done.wall_s < 3,
        ),
        _row(
            name,
            f"batchstream resume, {tail} left",
            lines,
            None,
            resume_tail,
            goal="first request after " + ("-" if first is None else f"{first:.2f}") + " s (< 3)",
            met=first is not None and first < 3,
        ),
        naive_row,
    ]
    _naive_failures(scenario, naive_row, theirs, naive_lines)
    scenario.notes += [
        f"the full run's ratio is CPU per item against the naive run's ({1e3 * per_item_ours:.2f} ms vs "
        f"{1e3 * per_item_naive:.2f} ms)",
        f"resume with {tail} left: first request after {first or 0:.2f} s, exit after "
        f"{resume_tail.wall_s:.2f} s ({resume_tail.cpu_s:.2f} s CPU, peak RSS {resume_tail.peak_rss_mb:.0f} "
        "MB)",
        f"resume with nothing left: {resume_done.cpu_s:.2f} s CPU, peak RSS {resume_done.peak_rss_mb:.0f} MB",
        f"input {source.stat().st_size / 1e6:.0f} MB, results file {output.stat().st_size / 1e6:.0f} MB",
    ]
    if ctx.startup_cpu_s is not None:
        scenario.notes.append(
            f"of each resume's CPU, {ctx.startup_cpu_s:.2f} s is Python start-up and imports"
        )
    return scenario


# -- 6. wall-time efficiency ------------------------------------------------------------------------------


def efficiency(ctx: Context) -> Scenario:
    latency, tokens = 0.5, 5
    repeats = 1 if ctx.quick else 3
    scenario = Scenario(
        "efficiency",
        "Wall-time efficiency",
        f"Simulator with a fixed latency (`--ttft {latency} --tokens-per-s 0 --reply-tokens "
        f"{tokens},{tokens}`), items = 4 x concurrency. The ideal is ceil(items / concurrency) x latency. A "
        "run's time is counted from its first request reaching the simulator to the client's exit, so "
        "start-up (imports, reading the input) is left out; it is in the notes. Goal: within 10% of the "
        f"ideal. batchstream runs {repeats}x per concurrency (the run with the median time is shown, every "
        "run's time is in the notes), the naive client once. One more run, without a verdict, repeats "
        "concurrency 1,000 at a 2 s latency: whatever of the gap is a fixed cost (opening 1,000 "
        "connections, launching the first wave) and not a cost per wave shows up there as a smaller ratio. "
        "The notes break the time over the ideal down by when the simulator saw each request: how far apart "
        "each wave's requests arrived (they go out one by one, each once the client has handled the reply "
        "before it), and what came after the last reply was due.",
    )
    work = ctx.dir("efficiency")
    for concurrency in (10, 100, 1000):
        items = 4 * concurrency
        name = f"efficiency c={concurrency}"
        source = write_input(work / f"input{concurrency}.jsonl", items)
        ours: list[tuple[Measured, Path, list[float]]] = []
        with Simulator(work, ttft=latency, tokens_per_s=0, reply_tokens=f"{tokens},{tokens}") as sim:
            for attempt in range(repeats):
                log(f"{name}: batchstream run {attempt + 1}/{repeats}")
                output = work / f"bs{concurrency}-{attempt}.results.jsonl"
                argv = batchstream_argv(source, output, sim.url, concurrency)
                run = run_client(argv, cwd=work, simulator=sim)
                arrivals = sim.request_times()
                sim.reset()
                _expect("batchstream ok items", read_results(output).ok, items)
                ours.append((run, output, arrivals))
            log(f"{name}: naive")
            naive_out = work / f"naive{concurrency}.results.jsonl"
            naive = run_naive(source, naive_out, sim, concurrency, work)
        ours.sort(key=lambda measured: _active_s(measured[0]))
        ours_run, ours_out, ours_arrivals = ours[len(ours) // 2]
        if len(ours) > 1:
            ideal = math.ceil(items / concurrency) * latency
            times = ", ".join(f"{_active_s(run):.2f} s ({_active_s(run) / ideal:.2f}x)" for run, _, _ in ours)
            scenario.notes.append(f"{name}, batchstream: the {len(ours)} runs took {times}")
        for tool, run, path in (("batchstream", ours_run, ours_out), (NAIVE, naive, naive_out)):
            _efficiency_row(scenario, name, tool, run, path, latency, items, concurrency, naive.cpu_s)
        scenario.notes.append(_waves_note(name, ours_run, ours_arrivals, items, concurrency, latency))
    slow, concurrency = 2.0, 1000
    items = 4 * concurrency
    name = f"efficiency c={concurrency}, {slow:g} s latency"
    source = work / f"input{concurrency}.jsonl"
    with Simulator(work, ttft=slow, tokens_per_s=0, reply_tokens=f"{tokens},{tokens}") as sim:
        log(f"{name}: batchstream")
        out = work / "bs-slow.results.jsonl"
        run = run_client(batchstream_argv(source, out, sim.url, concurrency), cwd=work, simulator=sim)
        arrivals = sim.request_times()
    _efficiency_row(scenario, name, "batchstream", run, out, slow, items, concurrency, None)
    scenario.notes.append(_waves_note(name, run, arrivals, items, concurrency, slow))
    return scenario


def _waves_note(
    name: str, run: Measured, arrivals: list[float], items: int, concurrency: int, latency: float
) -> str:
    """Where a run's time over the ideal went, from when the simulator saw each of its requests.

    Every request of a wave could in principle go out at once; each goes out once the client has handled
    the reply before it and launched it, so a wave arrives spread over that much time, and the last
    wave's lag is on top of the ideal. The rest is after the last reply was due: handling it, and exit.
    """
    if len(arrivals) != items:  # retries: the waves are not whole
        return f"{name}, batchstream: {len(arrivals):,} requests for {items:,} items, so no wave breakdown"
    waves = [arrivals[start : start + concurrency] for start in range(0, len(arrivals), concurrency)]
    spreads = ", ".join(f"{1000 * (wave[-1] - wave[0]):.0f}" for wave in waves)
    span = arrivals[-1] - arrivals[0]
    late = span - (len(waves) - 1) * latency
    tail = _active_s(run) - span - latency
    over = _active_s(run) - math.ceil(items / concurrency) * latency
    return (
        f"{name}, batchstream (the run shown): each wave's {concurrency:,} requests reached the simulator "
        f"over {spreads} ms. Of its {over:.2f} s over the ideal, "
        f"{late:.2f} s is how much later than {len(waves) - 1} latencies after the first request the last "
        f"one arrived, and {tail:.2f} s is from when the last reply was due to the client's exit"
    )


def _active_s(run: Measured) -> float:
    """From the first request reaching the simulator to the client's exit."""
    return run.wall_s - (run.first_request_s or 0.0)


def _efficiency_row(
    scenario: Scenario,
    name: str,
    tool: str,
    run: Measured,
    path: Path,
    latency: float,
    items: int,
    concurrency: int,
    naive_cpu_s: float | None,
) -> None:
    """One run's row; `naive_cpu_s` None marks a run shown without a verdict."""
    results = read_results(path)
    is_ours = tool == "batchstream"
    if is_ours:
        _expect("batchstream ok items", results.ok, items)
    ideal = math.ceil(items / concurrency) * latency
    active = _active_s(run)
    factor = active / ideal
    row = _row(
        name,
        tool,
        items,
        results.output_tokens,
        run,
        ratio=None if naive_cpu_s is None else run.cpu_s / naive_cpu_s,
        goal=f"{active:.2f} s = {factor:.2f}x ideal {ideal:.1f} s",
        met=(factor <= 1.10) if is_ours and naive_cpu_s is not None else None,
    )
    scenario.rows.append(row)
    if not is_ours:
        _naive_failures(scenario, row, results, items)
    scenario.notes.append(
        f"{name}, {tool}: first request {run.first_request_s or 0:.2f} s after launch, then "
        f"{active:.2f} s to exit ({active - ideal:.2f} s over the ideal); {run.cpu_s:.2f} s CPU"
    )


# -- 7. rate limits ---------------------------------------------------------------------------------------


def _longest_gap(timeline: list[tuple[float, int]]) -> tuple[float, float]:
    """The longest stretch (start, length) in which the simulator received no new request."""
    best = (0.0, 0.0)
    since, count = None, None
    for moment, requests in timeline:
        if requests != count:
            if since is not None and moment - since > best[1]:
                best = (since, moment - since)
            since, count = moment, requests
    return best


def rate_limit(ctx: Context) -> Scenario:
    rpm, items = (600, 900) if ctx.quick else (1200, 2400)
    concurrency, ttft, tokens = 64, 0.2, 20
    name = f"rate limit rpm={rpm}"
    ideal = (items - rpm) / (rpm / 60) + ttft
    scenario = Scenario(
        "rate_limit",
        "Rate limits",
        f"Simulator `--rpm {rpm} --ttft {ttft} --reply-tokens {tokens},{tokens}`: a token bucket that "
        f"starts full ({rpm:,} requests at once), then refills at {rpm // 60}/s. {items:,} items, "
        f"concurrency {concurrency}. The allowed rate is the fastest the bucket lets {items:,} items "
        f"through: the burst, then {items - rpm:,} more at {rpm // 60}/s, plus one reply's latency = "
        f"{ideal:.1f} s; the achieved rate is items answered 200 over the time from the first request to "
        "exit. Goals: < 5% of requests answered 429; achieved >= 90% of allowed. The simulator's request "
        "count is sampled every 0.5 s to find pauses. The naive pattern (max_retries=0) is shown for "
        "contrast: it never waits, so a 429 is a lost item.",
    )
    work = ctx.dir("rate_limit")
    source = write_input(work / "input.jsonl", items)
    runs = []
    with Simulator(work, rpm=rpm, ttft=ttft, reply_tokens=f"{tokens},{tokens}") as sim:
        for tool in ("batchstream", NAIVE):
            log(f"{name}: {tool}")
            sim.reset()
            if tool == "batchstream":
                output = work / "bs.results.jsonl"
                argv = batchstream_argv(source, output, sim.url, concurrency)
                run = run_client(argv, cwd=work, simulator=sim, ok_codes=(0, 1), sample_every=0.5)
            else:
                output = work / "naive.results.jsonl"
                run = run_naive(source, output, sim, concurrency, work, sample_every=0.5)
            runs.append((tool, run, sim.stats(), read_results(output)))
    for tool, run, stats, results in runs:
        requests = int(stats["requests"])
        throttled = int(stats["by_status"].get("429", 0))
        share = throttled / requests if requests else 0.0
        active = run.wall_s - (run.first_request_s or 0.0)
        answered = int(stats["by_status"].get("200", 0))
        is_ours = tool == "batchstream"
        if results.ok == items:
            fraction = (answered / active) / (items / ideal)
            achieved = f"achieved {100 * fraction:.0f}% of the allowed rate (>= 90%)"
        else:
            fraction = 0.0
            achieved = f"{items - results.ok:,} items lost"
        row = _row(
            name,
            tool,
            items,
            results.output_tokens,
            run,
            goal=f"429s {100 * share:.1f}% (< 5%), {achieved}",
            met=(share < 0.05 and fraction >= 0.90) if is_ours else None,
        )
        scenario.rows.append(row)
        gap_at, gap = _longest_gap(run.timeline)
        scenario.notes.append(
            f"{tool}: {requests:,} requests, {throttled:,} answered 429; {results.ok:,} items ok, "
            f"{results.errors:,} recorded as errors; {active:.1f} s from the first request to exit "
            f"(allowed: {ideal:.1f} s); longest stretch without a new request: {gap:.1f} s, from "
            f"{gap_at:.1f} s after launch"
        )
        if is_ours and results.ok != items:
            scenario.notes.append(f"batchstream did not finish every item ({results.ok:,}/{items:,} ok)")
    return scenario


def outage(ctx: Context) -> Scenario:
    storm_s, items, concurrency, attempts = 20, 60, 16, 3
    # The longest probe interval (outage.MAX_PROBE_S) plus a moment for the replies.
    resume_within_s = 11.0
    name = f"529 storm {storm_s} s"
    scenario = Scenario(
        "outage",
        "Outages",
        f"Simulator `--outage {storm_s} --outage-kind 529 --retry-after 1`: every request fails with a 529 "
        f"for {storm_s} s from the first one, then the service is back. {items} items, concurrency "
        f"{concurrency}, tight per-item retries (`--max-attempts {attempts} --backoff-cap 1`): before the "
        f"run-wide breaker (issue 20) this recorded all {items} items as errors after {attempts * items} "
        f"requests. Goals: every item ok and completed once; fewer requests during the storm than items; "
        f"the run done within {resume_within_s:g} s of the storm's end (the longest probe interval, 10 s, "
        "and the replies).",
    )
    work = ctx.dir("outage")
    source = write_input(work / "input.jsonl", items)
    output = work / "bs.results.jsonl"
    extra = ("--max-attempts", str(attempts), "--backoff-cap", "1")
    with Simulator(work, outage=storm_s, outage_kind="529", retry_after=1, ttft=0.05) as sim:
        log(f"{name}: batchstream")
        run = run_client(
            batchstream_argv(source, output, sim.url, concurrency, extra=extra), cwd=work, simulator=sim
        )
        stats = sim.stats()
    results = read_results(output)
    during = int(stats["faults"].get("outage", 0))
    after_s = run.wall_s - (run.first_request_s or 0.0) - storm_s
    once = stats["max_completions_per_key"] == 1
    met = results.ok == items and once and during < items and after_s <= resume_within_s
    goal = (
        f"{results.ok}/{items} ok, each once: {'yes' if once else 'NO'}; {during} requests during the storm "
        f"(< {items}); done {after_s:.1f} s after it (<= {resume_within_s:g} s)"
    )
    scenario.rows.append(_row(name, "batchstream", items, results.output_tokens, run, goal=goal, met=met))
    scenario.notes.append(
        f"{int(stats['requests'])} requests in all: {during} answered 529 during the storm, "
        f"{results.ok} items ok, {results.errors} recorded as errors"
    )
    return scenario


SCENARIOS: dict[str, Callable[[Context], Scenario]] = {
    "many_short": many_short,
    "few_long": few_long,
    "tool_input": tool_input,
    "concurrent_2000": concurrent_2000,
    "big_input": big_input,
    "efficiency": efficiency,
    "rate_limit": rate_limit,
    "outage": outage,
    "pacing": lambda ctx: _pacing(ctx.dir("pacing"), ctx.quick, log),
}


def _register_late() -> None:
    """Scenarios in modules of their own, which import this one."""
    from .caching import prompt_caching

    SCENARIOS["prompt_caching"] = prompt_caching


_register_late()


def measure_startup(ctx: Context) -> None:
    # The least of three: start-up cost is fixed, and anything above it is interference.
    ctx.startup_cpu_s = min(startup_cpu(ctx.dir("startup")).cpu_s for _ in range(3))
