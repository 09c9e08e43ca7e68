"""The API key never leaves the process: not on stdout or stderr, not in any file, on any path through a run.

Every run below uses ANTHROPIC_API_KEY=TEST_KEY and drives a different way of failing; all their output and
every file left behind are then searched for the key and for its last 20 characters.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TEST_KEY, cli_env, run_cli, write_jsonl

from batchstream.simulator import SimulatorThread

SimFactory = Callable[..., SimulatorThread]

FAST = (
    "--backoff-base",
    "0.01",
    "--backoff-cap",
    "0.05",
    "--stall-timeout",
    "0.3",
    "--progress-interval",
    "0",
)
NEEDLES = (TEST_KEY.encode(), TEST_KEY[-20:].encode())


class Collected:
    """Every byte batchstream wrote to a terminal, by where it went."""

    def __init__(self) -> None:
        self.streams: list[tuple[str, bytes]] = []

    def add(self, what: str, stdout: bytes | str, stderr: bytes | str) -> None:
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            self.streams.append((f"{what} {name}", data.encode() if isinstance(data, str) else data))


def all_files(root: Path) -> Iterator[Path]:
    for directory, _dirs, files in os.walk(root):
        for name in files:
            yield Path(directory, name)


def assert_no_key(collected: Collected, root: Path) -> None:
    sources = list(collected.streams)
    sources += [(str(path), path.read_bytes()) for path in all_files(root)]
    for where, data in sources:
        for needle in NEEDLES:
            assert needle not in data, f"the API key (or its tail) appears in {where}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_error_path_writes_the_api_key_anywhere(tmp_path: Path, simulator_factory: SimFactory) -> None:
    collected = Collected()
    sim_log = tmp_path / "simulator.log"
    sim = simulator_factory(
        seed=3,
        retry_after_s=0,
        reply_tokens=(5, 20),
        log_path=str(sim_log),
        p_429=0.05,
        p_529=0.05,
        p_500=0.05,
        p_error_event=0.05,
        p_drop=0.05,
        p_truncate=0.05,
        p_stall=0.02,
    )

    # 1. Mixed faults plus one item per fault kind that never recovers, so every error message is recorded.
    # Three failures each: the first wave fails before anything succeeds, which an outage would explain, so
    # its attempts are not charged to the items (outage.py).
    scripted = {
        "bad-request": "[[sim status=400]]",
        "not-found": "[[sim status=404]]",
        "rate-limited": "[[sim fail=429,429]]",
        "overloaded": "[[sim fail=529,529,529]]",
        "server-error": "[[sim fail=500,500,500]]",
        "error-event": "[[sim fail=error_event,error_event,error_event]]",
        "dropped": "[[sim fail=drop,drop,drop]]",
        "truncated": "[[sim fail=truncate,truncate,truncate]]",
        "stalled": "[[sim fail=stall,stall,stall]]",
    }
    rows: list[dict[str, object]] = [{"id": item, "prompt": f"Fail: {d}"} for item, d in scripted.items()]
    rows += [{"id": f"mix{i:02d}", "prompt": f"Mixed item {i}."} for i in range(40)]
    mixed_in = write_jsonl(tmp_path / "mixed.jsonl", rows)
    mixed = run_cli("run", mixed_in, *FAST, "--max-attempts", "2", "-c", "8", base_url=sim.base_url)
    collected.add("mixed run", mixed.stdout, mixed.stderr)
    assert mixed.returncode == 1, mixed.stderr
    results_text = (tmp_path / "mixed.results.jsonl").read_text()
    for expected in ("invalid_request_error", "rate_limit_error", "overloaded_error", "api_error"):
        assert expected in results_text  # the error paths really were taken
    for expected in ("connection_error", "incomplete_stream", "timeout"):
        assert expected in results_text

    # 2. The key is refused (401): a fatal stop whose message talks about the key.
    wrong_sim = simulator_factory(retry_after_s=0, api_key="sk-ant-api03-some-other-key-entirely-000000")
    refused_in = write_jsonl(tmp_path / "refused.jsonl", [{"id": "r", "prompt": "Hello."}])
    refused = run_cli("run", refused_in, *FAST, base_url=wrong_sim.base_url)
    collected.add("401 run", refused.stdout, refused.stderr)
    assert refused.returncode == 2, refused.stderr
    assert "API key" in refused.stderr

    # 3. Nothing listening: every attempt is a connection error.
    offline_in = write_jsonl(tmp_path / "offline.jsonl", [{"id": "o", "prompt": "Anyone there?"}])
    offline = run_cli(
        "run", offline_in, *FAST, "--max-attempts", "2", base_url=f"http://127.0.0.1:{free_port()}"
    )
    collected.add("offline run", offline.stdout, offline.stderr)
    assert offline.returncode == 1, offline.stderr

    # 3b. Nothing listening for several items: an outage, which ends the run past --max-outage.
    outage_in = write_jsonl(
        tmp_path / "outage.jsonl", [{"id": f"o{i}", "prompt": f"Hello {i}?"} for i in range(4)]
    )
    outage = run_cli(
        "run", outage_in, *FAST, "--max-outage", "0.5", base_url=f"http://127.0.0.1:{free_port()}"
    )
    collected.add("outage run", outage.stdout, outage.stderr)
    assert outage.returncode == 4, outage.stderr

    # 4. Bad input: refused before anything is sent.
    bad_in = tmp_path / "bad.jsonl"
    bad_in.write_text(
        '{"id": "x", "prompt": 5}\nnot json\n{"id": "x", "prompt": "dup"}\n{"prompt": "no id"}\n'
    )
    bad = run_cli("run", bad_in, *FAST, base_url=sim.base_url)
    collected.add("bad input run", bad.stdout, bad.stderr)
    assert bad.returncode == 2, bad.stderr
    assert "invalid input" in bad.stderr

    # 5. The output is locked by another run.
    locked_in = write_jsonl(tmp_path / "locked.jsonl", [{"id": "l", "prompt": "Locked out."}])
    lock_fd = os.open(tmp_path / "locked.results.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = run_cli("run", locked_in, *FAST, base_url=sim.base_url)
    finally:
        os.close(lock_fd)
    collected.add("locked run", locked.stdout, locked.stderr)
    assert locked.returncode == 2, locked.stderr
    assert "another batchstream run" in locked.stderr

    # 6. Interrupted: SIGINT mid-run, with streams open.
    slow_sim = simulator_factory(tokens_per_s=100, reply_tokens=(20, 40), retry_after_s=0)
    slow_in = write_jsonl(
        tmp_path / "slow.jsonl", [{"id": f"s{i}", "prompt": f"Slow {i}."} for i in range(40)]
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchstream", "run", str(slow_in), *FAST, "-c", "8"],
        env=cli_env(slow_sim.base_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    slow_results = tmp_path / "slow.results.jsonl"
    deadline = time.monotonic() + 30
    while not (slow_results.exists() and slow_results.read_bytes().count(b"\n") >= 3):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the slow run ended or stalled before it could be interrupted: {err.decode()}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    collected.add("interrupted run", out, err)
    assert proc.returncode == 130, err.decode()

    for simulator in (sim, wrong_sim, slow_sim):
        simulator.stop()  # closes the request log so its every byte is on disk
    assert sim_log.stat().st_size > 0
    assert (tmp_path / "mixed.results.summary.jsonl").exists()
    assert (tmp_path / "slow.results.summary.jsonl").exists()
    assert_no_key(collected, tmp_path)
