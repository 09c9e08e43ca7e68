"""Shared fixtures: a simulator on loopback and a way to run the real CLI against it."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
import trustme

from batchstream.inputs import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from batchstream.simulator import SimulatorConfig, SimulatorThread, expected_reply

# A whole reply of one text block ("Hi."), as the API streams it.
CANNED_SSE = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"claude-sonnet-5-5","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hi."}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
    b'"stop_sequence":null},"usage":{"output_tokens":2}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
# A key that looks real; tests search every byte batchstream writes for it.
TEST_KEY = "sk-ant-api03-TESTKEY-3f9a7c1e5b2d46809e8d7c6b5a4f3e2d1c0b9a8f"


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., SimulatorThread]]:
    """Start simulators (in a thread of the test process) with the given knobs; all stop at teardown."""
    started: list[SimulatorThread] = []

    def start(**knobs: object) -> SimulatorThread:
        knobs.setdefault("ttft_s", 0.0)
        sim = SimulatorThread(SimulatorConfig(**knobs))  # type: ignore[arg-type]
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulator_factory: Callable[..., SimulatorThread]) -> SimulatorThread:
    return simulator_factory()


def cli_env(base_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["ANTHROPIC_API_KEY"] = TEST_KEY
    if base_url is not None:
        env["ANTHROPIC_BASE_URL"] = base_url
    env.update(extra)
    return env


class Completed(NamedTuple):
    """What a CLI call left: as `subprocess.CompletedProcess` names it."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str | Path,
    base_url: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    process: bool = False,
    timeout: float = 60,
) -> Completed:
    """Run `batchstream ARGS` as a user would, capturing stdout and stderr.

    In this process through click's runner by default: the same command, parser and exit codes without a
    new interpreter and SDK import per call (about a second each). `process=True` runs `python -m
    batchstream` instead, for what only a process has: results teed to the stdout descriptor, signals, exit.
    """
    env = env if env is not None else cli_env(base_url)
    argv = [str(arg) for arg in args]
    if process:
        done = subprocess.run(
            [sys.executable, "-m", "batchstream", *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Completed(done.returncode, done.stdout, done.stderr)
    from click.testing import CliRunner

    from batchstream.cli import main

    # The runner only adds to os.environ (restoring it after): what `env` leaves out is taken out.
    overrides: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    overrides.update(env)
    with contextlib.chdir(cwd or Path.cwd()):
        result = CliRunner().invoke(
            main, argv, env=overrides, prog_name="batchstream", catch_exceptions=False
        )
    return Completed(result.exit_code, result.stdout, result.stderr)


class Clock:
    """A clock that moves only when a test moves it, for code that takes its clock as an argument."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


class ItemsRun(NamedTuple):
    rows: list[dict[str, Any]]
    returncode: int
    stderr: str


def run_items(
    tmp_path: Path,
    base_url: str,
    prompts: dict[str, str],
    *args: str,
    env: dict[str, str | None] | None = None,
    prefix: tuple[str, ...] = (),
    timeout: float = 60,
) -> ItemsRun:
    """`batchstream run` over one line per prompt (id -> prompt) against `base_url`, as a user runs it.

    `prefix` goes before the interpreter (e.g. `unshare -n`); `env` adds to `cli_env`'s variables, a None
    value taking one out (proxies, say, which every run here drops unless `env` sets them). The rows are the
    results file's lines (none if it was not written), the exit code and stderr as they came.
    """
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])
    variables = {k: v for k, v in cli_env(base_url).items() if k.lower() not in PROXY_VARIABLES}
    for name, value in (env or {}).items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    argv = ("run", inputs, "-q", *args)
    if prefix:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "batchstream", *map(str, argv)],
            env=variables,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    else:
        done = run_cli(*argv, env=variables)
    results = tmp_path / "in.results.jsonl"
    return ItemsRun(read_jsonl(results) if results.exists() else [], done.returncode, done.stderr)


def prompt_body(prompt: str) -> dict[str, Any]:
    """The request body `run` sends for a line that gives only a prompt."""
    return {
        "model": DEFAULT_MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt}],
    }


def rows_by_id(done: ItemsRun) -> dict[str, dict[str, Any]]:
    ids = [row["id"] for row in done.rows]
    assert len(ids) == len(set(ids)), f"an id recorded twice: {sorted(ids)}"
    return {str(row["id"]): row for row in done.rows}


def assert_exact_replies(done: ItemsRun, prompts: dict[str, str], attempts: int | None = 1) -> None:
    """Exit 0, and each item's row holds the simulator's reply to its prompt (after `attempts` attempts,
    unless None)."""
    assert done.returncode == 0, done.stderr
    rows = rows_by_id(done)
    assert set(rows) == set(prompts)
    for item, prompt in prompts.items():
        want, row = expected_reply(prompt_body(prompt)), rows[item]
        assert (row["status"], row["error"]) == ("ok", None), row
        assert attempts is None or row["attempts"] == attempts, row
        assert row["text"] == want["text"]
        assert row["stop_reason"] == want["stop_reason"]
        assert row["usage"]["input_tokens"] == want["usage"]["input_tokens"]
        assert row["usage"]["output_tokens"] == want["usage"]["output_tokens"]


@contextlib.contextmanager
def tls_simulator(ca: trustme.CA, *hostnames: str) -> Iterator[SimulatorThread]:
    """The simulator serving HTTPS with a certificate for `hostnames`, issued by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hostnames).configure_cert(context)
    with SimulatorThread(SimulatorConfig(ttft_s=0), ssl=context) as sim:
        yield sim
