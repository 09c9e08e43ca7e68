"""Processes and measurements: a simulator in its own process, clients measured with `os.wait4`.

Every client (batchstream's CLI, the naive script, the lag probe) runs as a child process, and its figures
come from the rusage that `wait4` returns for that one child: user + system CPU and peak RSS of the client
alone, including interpreter start-up and imports. The simulator is another child, started fresh for each
scenario; the client never shares a process (or a GIL) with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import resource
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LAUNCHER = Path(__file__).resolve().parent / "launch.py"
BENCH_KEY = "sk-ant-bench-0000000000000000000000000000000000000000"


class BenchError(RuntimeError):
    """A run did not do what the scenario needs (crashed, timed out, wrong results)."""


def client_env(**extra: str) -> dict[str, str]:
    """The environment for client processes: a fake key, no inherited ANTHROPIC_* settings, `bench`
    importable whatever the working directory."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC_")}
    env["ANTHROPIC_API_KEY"] = BENCH_KEY
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


# -- inputs and outputs -----------------------------------------------------------------------------------


def write_input(path: Path, count: int, max_tokens: int | None = None) -> Path:
    """`count` distinct prompts in batchstream's simplest line form ({"id", "prompt"}), with a line-level
    max_tokens when the replies must be longer than the default 1024 tokens."""
    extra = {} if max_tokens is None else {"max_tokens": max_tokens}
    with path.open("wb") as out:
        for start in range(0, count, 10_000):
            out.write(
                b"".join(
                    orjson.dumps(
                        {"id": f"item-{i:07d}", "prompt": f"Benchmark prompt {i}: a short note.", **extra}
                    )
                    + b"\n"
                    for i in range(start, min(count, start + 10_000))
                )
            )
    return path


@dataclass
class ResultsSummary:
    lines: int = 0
    ok: int = 0
    errors: int = 0
    output_tokens: int = 0
    # id -> (text, tool call inputs), to check that two clients recorded the same replies
    texts: dict[str, tuple[str, list[Any]]] = field(default_factory=dict)
    error_kinds: Counter[str] = field(default_factory=Counter)


def read_results(path: Path, *, keep_texts: bool = False) -> ResultsSummary:
    summary = ResultsSummary()
    if not path.exists():
        return summary
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            record = orjson.loads(raw)
            summary.lines += 1
            if record.get("status") == "ok":
                summary.ok += 1
                summary.output_tokens += int((record.get("usage") or {}).get("output_tokens") or 0)
                if keep_texts:
                    calls = [call.get("input") for call in record.get("tool_calls") or []]
                    summary.texts[record["id"]] = (record.get("text") or "", calls)
            else:
                summary.errors += 1
                error = record.get("error")
                if isinstance(error, dict):
                    message = str(error.get("message") or error.get("type") or "")
                    error = f"status {error.get('status')}: {message.split('. ')[0]}"
                summary.error_kinds[str(error)[:160]] += 1
    return summary


TOOL = {
    "name": "write_file",
    "description": "Write a text file.",
    "input_schema": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
}


def tool_request(input_bytes: int, index: int = 0) -> dict[str, Any]:
    """A request the simulator answers with one forced write_file call of about `input_bytes` of JSON."""
    return {
        "messages": [
            {"role": "user", "content": f"Write report {index}. [[sim tool_input_bytes={input_bytes}]]"}
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": TOOL["name"]},
    }


def write_tool_input(path: Path, count: int, input_bytes: int) -> Path:
    with path.open("wb") as out:
        for i in range(count):
            out.write(orjson.dumps({"id": f"tool-{i:05d}", **tool_request(input_bytes, i)}) + b"\n")
    return path


def drop_last_lines(path: Path, count: int) -> None:
    """Remove the last `count` lines of a results file, as if the run had stopped that much earlier; reads
    only the file's tail, so this process never holds the file (see `bench/launch.py` for why it matters)."""
    with path.open("r+b") as fh:
        end = fh.seek(0, os.SEEK_END)
        block = 1 << 20
        while True:
            start = max(0, end - block)
            fh.seek(start)
            tail = fh.read(end - start)
            cut = len(tail) - (1 if tail.endswith(b"\n") else 0)
            for _ in range(count):
                cut = tail.rfind(b"\n", 0, cut)
                if cut == -1:
                    break
            if cut != -1 or start == 0:
                fh.truncate(start + cut + 1)
                return
            block *= 4


# -- the simulator ----------------------------------------------------------------------------------------


class Simulator:
    """`batchstream simulate` in its own process; `url` is what it printed once it was listening."""

    def __init__(self, workdir: Path, **knobs: Any) -> None:
        self.workdir = workdir
        self.knobs = knobs
        self.url = ""
        self.cpu_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Simulator:
        args = [PYTHON, "-m", "batchstream", "simulate", "--port", "0"]
        for name, value in self.knobs.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        out = self.workdir / "simulator.out"
        with out.open("wb") as stdout:
            self._proc = subprocess.Popen(
                args, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=client_env()
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = out.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("batchstream simulator listening on "):
                    self.url = line.rsplit(" ", 1)[1].strip()
                    return self
            if self._proc.poll() is not None:
                raise BenchError(f"the simulator exited at start-up:\n{text}")
            time.sleep(0.02)
        self.__exit__(None, None, None)
        raise BenchError("the simulator did not announce its URL within 30 s")

    def __exit__(self, *_exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            _, _, usage = _wait4(proc, timeout=15)
            self.cpu_s = usage.ru_utime + usage.ru_stime
        except TimeoutError:
            proc.kill()
            proc.wait()

    def _get(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return orjson.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self._get("/_sim/stats")

    def sends_tool_use(self) -> bool:
        """Whether this simulator streams tool_use input (`[[sim tool_input_bytes=N]]`); it did not always."""
        body = {"model": "claude-sonnet-5-5", "max_tokens": 1024, "stream": True, **tool_request(200)}
        request = urllib.request.Request(
            self.url + "/v1/messages",
            data=orjson.dumps(body),
            headers={
                "x-api-key": BENCH_KEY,
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return b'"input_json_delta"' in response.read()
        except OSError:
            return False

    def requests(self) -> int:
        return int(self.stats()["requests"])

    def request_times(self) -> list[float]:
        """When each request since the start or the last reset arrived, in `time.monotonic()` seconds."""
        return self._get("/_sim/request-times")

    def reset(self) -> None:
        self._get("/_sim/reset", method="POST")


# -- measured client processes ----------------------------------------------------------------------------


@dataclass
class Measured:
    """One client process: figures from its own rusage, times from the parent's clock."""

    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float
    first_request_s: float | None
    stdout: str
    stderr: str
    timeline: list[tuple[float, int]] = field(default_factory=list)


def _wait4(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, int, Any]:
    """`os.wait4` on one child, with a timeout that kills it; marks the Popen as reaped."""
    timer = threading.Timer(timeout, lambda: _kill_quietly(proc.pid))  # its group, if it leads one
    timer.start()
    started = time.monotonic()
    try:
        pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if time.monotonic() - started >= timeout:
        raise TimeoutError(f"pid {proc.pid} killed after {timeout:.0f} s")
    return pid, status, usage


def _kill_quietly(pid: int) -> None:
    """SIGKILL the process `pid` and, when it leads its own process group (a launcher), that group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _pty_stderr() -> Iterator[int]:
    """A pseudo-terminal for the child's stderr (so it draws its terminal progress bar); drained here."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(master, 65536):
                pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield slave
    finally:
        os.close(slave)
        reader.join(timeout=5)
        os.close(master)


def run_client(
    argv: Sequence[str],
    *,
    cwd: Path,
    simulator: Simulator | None = None,
    timeout: float = 900,
    tty: bool = False,
    check: bool = True,
    ok_codes: tuple[int, ...] = (0,),
    sample_every: float | None = None,
) -> Measured:
    """Run one client to completion through `bench/launch.py`, which reports the client's own rusage and
    times. With `simulator`, also time the client's first request to it (`first_request_s`, from the
    simulator's own stamp, which the client's run must be the first since the simulator started or was
    reset), and with `sample_every`, sample the simulator's request count at that interval until the
    client exits (`Measured.timeline`)."""
    argv = list(argv)
    out_path, err_path = cwd / "client.stdout", cwd / "client.stderr"
    report_path = cwd / "client.rusage.json"
    report_path.unlink(missing_ok=True)
    timeline: list[tuple[float, int]] = []
    done = threading.Event()
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(out_path.open("wb"))
        stderr: Any = stack.enter_context(_pty_stderr()) if tty else stack.enter_context(err_path.open("wb"))
        launcher = subprocess.Popen(
            [PYTHON, "-S", "-I", str(LAUNCHER), str(report_path), "--", *argv],
            cwd=cwd,
            env=client_env(),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # one process group: a timeout kills the launcher and the client
        )
        if simulator is not None and sample_every is not None:

            def sample() -> None:
                while not done.wait(sample_every):
                    with contextlib.suppress(OSError):
                        timeline.append((time.monotonic(), simulator.requests()))

            threading.Thread(target=sample, daemon=True).start()
        try:
            _wait4(launcher, timeout)
        finally:
            done.set()
    if launcher.returncode != 0 or not report_path.exists():
        raise BenchError(f"the launcher failed ({launcher.returncode}) for {' '.join(argv)}")
    report = orjson.loads(report_path.read_bytes())
    started = report["started"]
    first_request_s = None
    if simulator is not None and (first_at := simulator.stats()["first_request_at"]) is not None:
        if first_at < started:
            raise BenchError("the simulator saw a request before this client started: reset it between runs")
        first_request_s = first_at - started
    result = Measured(
        argv=argv,
        returncode=report["returncode"],
        wall_s=report["ended"] - started,
        cpu_s=report["user_s"] + report["sys_s"],
        user_s=report["user_s"],
        sys_s=report["sys_s"],
        peak_rss_mb=report["maxrss_kb"] / 1024,  # kilobytes on Linux
        first_request_s=first_request_s,
        stdout=out_path.read_text(errors="replace"),
        stderr="" if tty else err_path.read_text(errors="replace"),
        timeline=[(moment - started, count) for moment, count in timeline],
    )
    if check and result.returncode not in ok_codes:
        raise BenchError(
            f"{' '.join(argv)} exited with "
            f"{result.returncode}:\n{result.stderr[-3000:]}{result.stdout[-2000:]}"
        )
    return result


def batchstream_argv(
    input_path: Path,
    output: Path,
    url: str,
    concurrency: int,
    *,
    quiet: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [PYTHON, "-m", "batchstream", "run", str(input_path), "-o", str(output)]
    argv += ["--base-url", url, "-c", str(concurrency), *extra]
    return [*argv, "-q"] if quiet else argv


def naive_argv(input_path: Path, output: Path, url: str, concurrency: int, max_retries: int = 0) -> list[str]:
    return [
        PYTHON,
        "-m",
        "bench.naive",
        str(input_path),
        "-o",
        str(output),
        "--base-url",
        url,
        "-c",
        str(concurrency),
        "--max-retries",
        str(max_retries),
    ]


def run_naive(
    input_path: Path, output: Path, simulator: Simulator, concurrency: int, cwd: Path, **options: Any
) -> Measured:
    """The naive client; exit 1 only means some items failed, which the scenario then reports."""
    argv = naive_argv(input_path, output, simulator.url, concurrency)
    return run_client(argv, cwd=cwd, simulator=simulator, ok_codes=(0, 1), **options)


def other_load(seconds: float = 2.0) -> float:
    """Share of all CPUs busy over `seconds` (from /proc/stat); between runs, that is other processes."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    total = total1 - total0
    return 0.0 if total <= 0 else 1.0 - (idle1 - idle0) / total


def python_speed_ms() -> float:
    """Milliseconds a fixed pure-Python loop takes here and now (best of 5).

    A shared host can run the same virtual machine a third slower for minutes at a time without any
    process in it being busier, and every CPU and wall-time figure moves with it: this is the yardstick
    that shows when.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        sum(range(1_000_000))
        best = min(best, time.perf_counter() - started)
    return 1e3 * best


def machine_busy_s() -> float:
    """CPU-seconds the whole machine has spent busy (all CPUs, from /proc/stat), for interference checks."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    busy = sum(values[:8]) - values[3] - values[4]  # user..steal, less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU-seconds used by this process and every child it has reaped (with their reaped children)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def startup_cpu(cwd: Path) -> Measured:
    """CPU of starting Python and importing what a batchstream run imports, before any work."""
    code = "import batchstream.cli, batchstream.runner, batchstream.transport.streaming, anthropic"
    return run_client([PYTHON, "-c", code], cwd=cwd)
