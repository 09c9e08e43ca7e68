"""`python -m bench`: run the scenarios, print the table, write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .harness import BenchError, machine_busy_s, other_load, own_cpu_s, python_speed_ms
from .report import Scenario, code_version, results_markdown, text_table, write_results
from .scenarios import SCENARIOS, Context, log, measure_startup

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="batchstream against the SDK's documented streaming pattern, on the local simulator.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Smaller sizes and fewer repeats (about 5 minutes instead of 8)."
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="Run only this scenario (repeatable). Results are then printed, not written, unless --results.",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="Where to write the Markdown results (default: bench/RESULTS.md, unless --only is given).",
    )
    parser.add_argument(
        "--slow",
        action="store_true",
        help="Also run the naive client on the long tool-use replies over the wire (adds minutes).",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="Before each scenario, wait up to this long for other processes to leave the CPUs idle.",
    )
    parser.add_argument("--workdir", type=Path, help="Keep inputs and outputs here (default: a temp dir).")
    return parser.parse_args(argv)


def _quiet_enough(patience: float) -> float:
    """How busy the CPUs are with other processes (0..1, over 2 s), waiting up to `patience` s for < 10%."""
    deadline = time.monotonic() + patience
    busy = other_load()
    while busy >= 0.10 and time.monotonic() < deadline:
        busy = other_load()
    return busy


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(SCENARIOS)
    results_path = args.results or (None if args.only else RESULTS)
    started_at = datetime.datetime.now().astimezone()
    started = time.monotonic()
    code_at_start = code_version()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="batchstream-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(workdir=workdir, quick=args.quick, slow=args.slow)
    scenarios: list[Scenario] = []
    try:
        log(f"working in {workdir}; measuring start-up cost")
        measure_startup(ctx)
        for index, name in enumerate(names, 1):
            busy = _quiet_enough(args.wait_quiet)
            python_ms = python_speed_ms()
            log(
                f"[{index}/{len(names)}] {name} (other processes busy: {100 * busy:.0f}% of the CPUs; "
                f"Python speed check {python_ms:.1f} ms)"
            )
            began = time.monotonic()
            busy_at, own_at = machine_busy_s(), own_cpu_s()
            try:
                scenario = SCENARIOS[name](ctx)
            except (BenchError, OSError, ValueError, KeyError) as exc:
                traceback.print_exc()
                scenario = Scenario(name, name, "", error=f"{type(exc).__name__}: {exc}"[:2000])
            scenario.seconds = time.monotonic() - began
            scenario.busy_before = busy
            scenario.python_ms = python_ms
            # Machine-wide busy time less this suite's own (itself, clients, launchers, simulators).
            scenario.others_cpu_s = max(0.0, (machine_busy_s() - busy_at) - (own_cpu_s() - own_at))
            scenarios.append(scenario)
            log(
                f"[{index}/{len(names)}] {name} took {scenario.seconds:.0f} s; other processes used "
                f"{scenario.others_cpu_s:.0f} CPU-s meanwhile"
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - started
    print(text_table(scenarios))
    for scenario in scenarios:
        print(
            f"\n{scenario.title} ({scenario.seconds:.0f} s; other processes used "
            f"{scenario.others_cpu_s or 0:.0f} CPU-s meanwhile; "
            f"Python speed check {scenario.python_ms or 0:.1f} ms)"
        )
        if scenario.error:
            print(f"  FAILED: {scenario.error}")
        for note in scenario.notes:
            print(f"  - {note}")
    print(
        f"\nstart-up (python + imports) CPU: {ctx.startup_cpu_s:.2f} s; suite wall time {total / 60:.1f} "
        f"min; batchstream code {code_version()}"
    )
    if results_path is not None:
        command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
        write_results(
            results_path,
            results_markdown(
                scenarios,
                command=command,
                started=started_at,
                total_s=total,
                quick=args.quick,
                code_at_start=code_at_start,
            ),
        )
        print(f"results written to {results_path}")
    # Missed goals are findings, reported in the table; only a scenario that could not run fails the suite.
    return 1 if any(scenario.error for scenario in scenarios) else 0
