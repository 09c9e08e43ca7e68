"""Shared fixtures: a simulator on loopback and a way to run the real CLI against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from batchstream.simulator import SimulatorConfig, SimulatorThread

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


def run_cli(
    *args: str | Path,
    base_url: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m batchstream ARGS` as a user would, capturing stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "batchstream", *map(str, args)],
        cwd=cwd,
        env=env if env is not None else cli_env(base_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
