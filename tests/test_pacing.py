"""Whole runs under a tight token limit: the client learns it from the headers and paces under it, so
every item is done with no 429, and progress says which limit paced the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import read_jsonl, run_cli, write_jsonl

from batchstream.simulator import SimulatorThread

SimFactory = Callable[..., SimulatorThread]
ARGS = ("-c", "16", "--progress-interval", "0.5", "--backoff-base", "0.01", "--backoff-cap", "0.05")


def run_paced(tmp_path: Path, sim: SimulatorThread, lines: list[dict[str, object]]) -> str:
    inputs = write_jsonl(tmp_path / "in.jsonl", lines)
    done = run_cli("run", inputs, *ARGS, base_url=sim.base_url, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    assert sorted(row["id"] for row in rows) == sorted(str(line["id"]) for line in lines)
    assert all(row["status"] == "ok" and row["attempts"] == 1 for row in rows)
    stats = sim.stats()
    assert stats["by_status"] == {"200": len(lines)}, stats["by_status"]
    return done.stderr


def test_a_run_under_a_tight_input_token_limit_paces_without_429s(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """62 prompts of 1,004 tokens against 60,000 a minute: the full bucket takes 59 of them, the rest need
    a few seconds of refill at 1,000 a second."""
    sim = simulator_factory(itpm=60_000, reply_tokens=(5, 5))
    lines: list[dict[str, object]] = [
        {"id": f"q{i:02d}", "prompt": f"{i:02d}" + "y" * 3_998} for i in range(62)
    ]
    stderr = run_paced(tmp_path, sim, lines)
    assert "paced by ITPM" in stderr


def test_a_run_under_a_tight_output_token_limit_paces_without_429s(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """122 replies of 250 tokens with max_tokens 1,000 against 30,000 a minute: each holds 1,000 while it
    streams and keeps 250; the bucket takes 116 at once, the rest need a few seconds."""
    sim = simulator_factory(otpm=30_000, reply_tokens=(250, 250))
    lines: list[dict[str, object]] = [
        {"id": f"q{i:03d}", "prompt": f"Item {i}.", "max_tokens": 1_000} for i in range(122)
    ]
    stderr = run_paced(tmp_path, sim, lines)
    assert "paced by OTPM" in stderr
