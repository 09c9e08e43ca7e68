from pathlib import Path

from batchstream.simulator import expected_reply
from conftest import read_jsonl, run_cli, write_jsonl


def test_run_records_the_simulators_exact_reply(tmp_path: Path, simulator) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Say hello."}])
    done = run_cli("run", inputs, "-q", base_url=simulator.base_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    [row] = read_jsonl(tmp_path / "in.results.jsonl")
    body = {"model": "claude-sonnet-5-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Say hello."}]}
    want = expected_reply(body)
    assert row["text"] == want["text"]
    assert row["usage"]["output_tokens"] == want["usage"]["output_tokens"]
    assert row["usage"]["input_tokens"] == want["usage"]["input_tokens"]
