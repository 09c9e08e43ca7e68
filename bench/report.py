"""Rows, the printed table, and bench/RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from batchstream.atomic import atomic_write

COLUMNS = (
    "scenario",
    "tool",
    "items",
    "events",
    "wall s",
    "CPU s",
    "µs/event",
    "peak RSS MB",
    "events/s",
    "ratio",
    "goal met?",
)


@dataclass
class Row:
    """One measured run. `ratio` is the client CPU relative to the naive pattern in the same scenario."""

    scenario: str
    tool: str
    items: int | None = None
    events: int | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None

    @property
    def us_per_event(self) -> float | None:
        if self.cpu_s is None or not self.events:
            return None
        return 1e6 * self.cpu_s / self.events

    @property
    def events_per_s(self) -> float | None:
        if not self.events or not self.wall_s:
            return None
        return self.events / self.wall_s

    def cells(self) -> list[str]:
        verdict = {True: "yes", False: "NO", None: "-"}[self.met]
        goal = f"{verdict}: {self.goal}" if self.goal else verdict
        return [
            self.scenario,
            self.tool,
            _int(self.items),
            _int(self.events),
            _num(self.wall_s, 2),
            _num(self.cpu_s, 2),
            _num(self.us_per_event, 1),
            _num(self.peak_rss_mb, 0),
            _int(None if self.events_per_s is None else round(self.events_per_s)),
            "-" if self.ratio is None else f"{self.ratio:.2f}x",
            goal,
        ]


@dataclass
class Scenario:
    key: str
    title: str
    setup: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    busy_before: float | None = None
    others_cpu_s: float | None = None
    python_ms: float | None = None  # `harness.python_speed_ms()` just before the scenario
    error: str | None = None


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def text_table(scenarios: list[Scenario]) -> str:
    rows = [list(COLUMNS)] + [row.cells() for scenario in scenarios for row in scenario.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    numeric = {2, 3, 4, 5, 6, 7, 8, 9}
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in numeric and index else cell.ljust(widths[i])
            for i, cell in enumerate(row[:-1])
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths) + "  " + "-" * 9)
    return "\n".join(lines)


def markdown_table(scenarios: list[Scenario]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 8 + ["---"]) + "|"]
    for scenario in scenarios:
        for row in scenario.rows:
            lines.append("| " + " | ".join(escape(cell) for cell in row.cells()) + " |")
    return "\n".join(lines)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _code_version() -> str:
    """The commit measured, and whether batchstream/ had uncommitted changes (read-only git commands)."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", "batchstream")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{commit}" + (" + uncommitted changes in batchstream/" if dirty else "")


def code_version() -> str:
    return _code_version()


def machine(code_at_start: str | None = None) -> dict[str, str]:
    code = _code_version()
    if code_at_start is not None and code_at_start != code:
        code = f"{code_at_start} at the start, {code} at the end (it changed during the run)"
    return {
        "batchstream code": code,
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "memory": _memory_gib(),
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "anthropic SDK": _version("anthropic"),
        "aiohttp": _version("aiohttp"),
        "httpx2": _version("httpx2"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "orjson": _version("orjson"),
        "batchstream": _version("batchstream"),
    }


def results_markdown(
    scenarios: list[Scenario],
    *,
    command: str,
    started: datetime.datetime,
    total_s: float,
    quick: bool,
    code_at_start: str | None = None,
) -> str:
    info = machine(code_at_start)
    out = [
        "# batchstream benchmark results",
        "",
        "Generated by `python -m bench` (see `bench/__init__.py` for what is measured and how). Do not "
        "edit by hand: run the suite again.",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}",
        f"- command: `{command}`" + (" (quick pass: smaller sizes)" if quick else ""),
        f"- suite wall time: {total_s / 60:.1f} min",
    ]
    out += [f"- {name}: {value}" for name, value in info.items()]
    out += [
        "",
        "Figures are the client process's own: user + system CPU and peak RSS from the `os.wait4` rusage of "
        "that one process (taken by a small launcher, `bench/launch.py`, so the suite's own memory never "
        "counts towards a client's peak RSS), including Python start-up and imports. The simulator runs in "
        "a separate process, started fresh for each scenario. `events` are streamed content deltas (the sum "
        "of `output_tokens`); `µs/event` is whole-process CPU divided by events. `ratio` is client CPU "
        "relative to the naive SDK pattern in the same scenario. `wall s` is the client's wall time from "
        "launch to exit.",
        "",
        markdown_table(scenarios),
        "",
    ]
    for scenario in scenarios:
        out += [f"## {scenario.title}", "", scenario.setup, ""]
        if scenario.error:
            out += [f"**Failed:** `{scenario.error}`", ""]
        out += [f"- {note}" for note in scenario.notes]
        busy = ""
        if scenario.busy_before is not None:
            busy += (
                f"; other processes kept {100 * scenario.busy_before:.0f}% of the CPUs busy just before it"
            )
        if scenario.others_cpu_s is not None and scenario.seconds:
            share = scenario.others_cpu_s / (scenario.seconds * (os.cpu_count() or 1))
            busy += (
                f" and used {scenario.others_cpu_s:.0f} CPU-s ({100 * share:.0f}% of the machine) during it"
            )
        if scenario.python_ms is not None:
            busy += f"; a fixed pure-Python loop took {scenario.python_ms:.1f} ms just before it"
        out += [f"- scenario wall time: {scenario.seconds:.0f} s{busy}", ""]
    return "\n".join(out)


def write_results(path: Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text.encode())
