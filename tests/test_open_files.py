"""A wide run raises its own limit on open files, or says before sending anything that it cannot."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import cli_env, read_jsonl, write_jsonl

from batchstream.simulator import SimulatorThread


def _run_with_file_limit(
    soft: int, hard: int, *args: str | Path, base_url: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchstream", *map(str, args)],
        env=cli_env(base_url),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )


def test_a_soft_limit_below_the_concurrency_is_raised(
    tmp_path: Path, simulator_factory: Callable[..., SimulatorThread]
) -> None:
    simulator = simulator_factory(ttft_s=0.5)  # slow enough that all 300 streams are open at once
    items = [{"id": f"i{n}", "prompt": f"prompt {n}"} for n in range(300)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    # 300 streams at once against a soft limit of 128 open files: the first wave needs 300 sockets.
    done = _run_with_file_limit(128, 4096, "run", source, "-q", "-c", "300", base_url=simulator.base_url)
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    assert sorted(row["id"] for row in rows) == sorted(item["id"] for item in items)
    assert {row["status"] for row in rows} == {"ok"}
    assert simulator.stats()["requests"] == 300


def test_a_hard_limit_below_the_concurrency_stops_the_run_before_sending(
    tmp_path: Path, simulator: SimulatorThread
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Hi"}])
    done = _run_with_file_limit(128, 256, "run", source, "-q", "-c", "300", base_url=simulator.base_url)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "batchstream: error: this --concurrency needs about 364 open files, and this process may open at "
        "most 256 (`ulimit -Hn`): lower --concurrency or raise the limit"
    )
    assert simulator.stats()["requests"] == 0
    assert read_jsonl(tmp_path / "in.results.jsonl") == []
