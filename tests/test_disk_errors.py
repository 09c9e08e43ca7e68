"""A results file that cannot grow (a full disk, a quota, a size limit) stops the run cleanly."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

from conftest import TEST_KEY, cli_env, read_jsonl, write_jsonl


def _limit_file_size(limit: int) -> None:
    # Past RLIMIT_FSIZE a write fails with EFBIG instead of killing the process, once SIGXFSZ is ignored:
    # the same path through batchstream as ENOSPC or EIO.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_failed_write_stops_the_run_with_a_clear_message_and_whole_lines(tmp_path: Path, simulator) -> None:
    rows = [{"id": f"item-{i:02d}", "prompt": f"Question {i}"} for i in range(40)]
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "in.results.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "batchstream", "run", str(inputs), "-q", "-c", "2", "--no-content"],
        env=cli_env(simulator.base_url),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: _limit_file_size(4000),
    )
    assert done.returncode == 2, done.stderr
    assert f"{output}: cannot write results (File too large); the run stopped." in done.stderr
    assert "Traceback" not in done.stderr
    assert TEST_KEY not in done.stderr
    data = output.read_bytes()
    assert data.endswith(b"\n")  # the partial line was taken back
    written = read_jsonl(output)
    assert 0 < len(written) < 40
    assert all(row["status"] == "ok" for row in written)

    resumed = subprocess.run(
        [sys.executable, "-m", "batchstream", "run", str(inputs), "-q", "--no-content"],
        env=cli_env(simulator.base_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = read_jsonl(output)
    assert sorted(row["id"] for row in final) == [row["id"] for row in rows]
    assert final[: len(written)] == written
    # Only the items in flight when the write failed (at most the concurrency, 2) were paid for twice.
    completions = simulator.stats()["completions_per_key"].values()
    assert sum(1 for count in completions if count > 1) <= 2
    assert max(completions) <= 2
