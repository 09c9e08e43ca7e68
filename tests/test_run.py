"""End to end: the real CLI (a subprocess) and the real SDK against the simulator over loopback.

Every reply is predicted with `expected_reply(body)` for the exact request body batchstream should send, and
the simulator's own stats (requests, completions per request key) show what was really sent, so these tests
check the wire as well as the files. Independent CLI runs go in parallel: most of a run is Python start-up.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import orjson
from conftest import TEST_KEY, Completed, cli_env, read_jsonl, run_cli, write_jsonl
from genai_prices import calc_price, extract_usage

from batchstream.inputs import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, Defaults, iter_requests
from batchstream.pricing import Pricer
from batchstream.simulator import SimulatorThread, expected_reply, request_key
from batchstream.summary import summarize_file

SAMPLES = Path(__file__).resolve().parent.parent / "sample_inputs"
HAIKU = "claude-haiku-4-5"
SONNET_4_6 = "claude-sonnet-4-6"  # takes temperature, top_p and top_k on API version 2023-06-01
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
RULE = "^[a-zA-Z0-9_-]{1,64}$ (a Message Batches API rule)"  # the custom_id rule

T = TypeVar("T")
Row = dict[str, Any]
Call = tuple[list[str], dict[str, str] | None, str]  # CLI arguments, env (None: the default), all of stderr


# --- helpers ------------------------------------------------------------------------------------------------


def body(content: str | list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    """The request body batchstream should send: model and max_tokens default as the CLI's defaults do."""
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    return {"model": DEFAULT_MODEL, "max_tokens": DEFAULT_MAX_TOKENS, "messages": messages, **params}


def keys(*bodies: dict[str, Any]) -> dict[str, int]:
    """Simulator `completions_per_key` for these bodies, each completed once."""
    return {request_key(b): 1 for b in bodies}


def by_id(rows: list[Row]) -> dict[str, Row]:
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), f"an id recorded twice: {sorted(ids)}"
    return {row["id"]: row for row in rows}


def genai_cost(model: str, usage: dict[str, Any]) -> float:
    extracted = extract_usage({"usage": usage}, provider_id="anthropic")
    return float(calc_price(extracted.usage, model, provider_id="anthropic").total_price)


def assert_ok(row: Row, sent: dict[str, Any]) -> None:
    """The row holds exactly the simulator's reply to `sent` (default knobs), from the first attempt."""
    want = expected_reply(sent)
    assert row["status"] == "ok"
    assert row["text"] == want["text"]
    assert row["content"] == [{"type": "text", "text": want["text"]}]
    assert row["stop_reason"] == want["stop_reason"]
    assert row["stop_sequence"] == want["stop_sequence"]
    assert row["model"] == sent["model"]
    assert row["usage"] == {**want["usage"], "service_tier": "standard"}
    assert row["attempts"] == 1
    assert row["retries"] == {}
    assert row["error"] is None
    assert isinstance(row["request_id"], str) and row["request_id"].startswith("req_")


def counts(rows: list[Row]) -> dict[str, Any]:
    """What a summary line must say about these rows (costs summed exactly, then rounded to 9 places)."""
    costs = [row["cost_usd"] for row in rows if row["cost_usd"] is not None]
    unpriced = sum(row["cost_usd"] is None and row["usage"] is not None for row in rows)
    cost = float(sum((Decimal(repr(c)) for c in costs), Decimal(0)).quantize(Decimal("1e-9")))
    return {
        "items": len(rows),
        "ok": sum(row["status"] == "ok" for row in rows),
        "errors": sum(row["status"] == "error" for row in rows),
        **{name: sum((row["usage"] or {}).get(name, 0) for row in rows) for name in TOKEN_FIELDS},
        "cost_usd": None if not costs and unpriced else cost,
        "unpriced_items": unpriced,
        "warmups": 0,
        # Nothing here is cached: no saving, and none known once an item had no price.
        "cache_saved_usd": None if unpriced else 0.0,
    }


def assert_summary(path: Path, rows: list[Row]) -> None:
    """One line per model (sorted), then the total; every figure equals the sum over the result lines."""
    lines = read_jsonl(path)
    models = sorted({row["model"] for row in rows})
    assert [line["kind"] for line in lines] == ["model"] * len(models) + ["total"]
    for line, model in zip(lines, models, strict=False):
        assert line["model"] == model
        assert {k: line[k] for k in counts(rows)} == counts([r for r in rows if r["model"] == model])
    total = lines[-1]
    assert {k: total[k] for k in counts(rows)} == counts(rows)
    assert total["attempts"] == sum(row["attempts"] for row in rows)


def files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its bytes, to show a command wrote nothing."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def names(directory: Path) -> list[str]:
    """Files a run left, lock files aside."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


def assert_no_key(*texts: str | bytes) -> None:
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode()
        assert TEST_KEY.encode() not in data


# --- exact replies, names, summary and cost ---------------------------------------------------------------

TURNS = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Name a prime."},
]
META = {"grader": "exact", "tags": ["a", 1, None, {"deep": [True, 2.5]}], "note": "ünïcode ✓"}


def test_a_varied_batch_records_exactly_what_the_simulator_replied(tmp_path: Path, simulator) -> None:
    lines = [
        {"id": "prompt-form", "prompt": "Say hello.", "meta": META},
        {
            "id": "messages-form",
            "system": "Answer tersely.",
            "messages": TURNS,
            "max_tokens": 50,
            "meta": None,
        },
        {
            "custom_id": "batches_form-1",
            "params": {"model": HAIKU, "max_tokens": 100, "messages": [{"role": "user", "content": "Hello"}]},
            "meta": "kept as is",
        },
        {"id": "cut-short", "prompt": "Write a long essay about rivers.", "max_tokens": 5},
        {"id": "stop-seq", "prompt": "Tell me a story.", "stop_sequences": ["."]},
        {
            "id": "blocks",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Block text."}]}],
            "stop_sequences": ["END"],
        },
        {"id": "beta-line", "prompt": "Through the beta client.", "betas": ["sim-beta-2025-01-01"]},
    ]
    sent = {
        "prompt-form": body("Say hello."),
        "messages-form": body(TURNS, max_tokens=50, system="Answer tersely."),
        "batches_form-1": body("Hello", model=HAIKU, max_tokens=100),
        "cut-short": body("Write a long essay about rivers.", max_tokens=5),
        "stop-seq": body("Tell me a story.", stop_sequences=["."]),
        "blocks": body(
            [{"role": "user", "content": [{"type": "text", "text": "Block text."}]}], stop_sequences=["END"]
        ),
        "beta-line": body("Through the beta client."),
    }
    # The batch really exercises both early stops.
    assert expected_reply(sent["cut-short"])["stop_reason"] == "max_tokens"
    assert expected_reply(sent["cut-short"])["usage"]["output_tokens"] == 5
    assert expected_reply(sent["stop-seq"])["stop_reason"] == "stop_sequence"
    write_jsonl(tmp_path / "in.jsonl", lines)

    done = run_cli("run", "in.jsonl", cwd=tmp_path, base_url=simulator.base_url)

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert names(tmp_path) == ["in.jsonl", "in.results.jsonl", "in.results.summary.jsonl"]
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    got = by_id(rows)
    assert sorted(got) == sorted(sent)
    for item_id, request in sent.items():
        assert_ok(got[item_id], request)
    assert got["cut-short"]["stop_reason"] == "max_tokens"
    assert got["stop-seq"]["stop_reason"] == "stop_sequence"
    assert got["stop-seq"]["stop_sequence"] == "."
    assert "." not in got["stop-seq"]["text"]
    # meta is copied unchanged, null included; a line without meta gets no meta key.
    assert got["prompt-form"]["meta"] == META
    assert "meta" in got["messages-form"] and got["messages-form"]["meta"] is None
    assert got["batches_form-1"]["meta"] == "kept as is"
    assert "meta" not in got["cut-short"]
    assert len({row["request_id"] for row in rows}) == len(rows)
    # The simulator received exactly these bodies, once each, and nothing else.
    stats = simulator.stats()
    assert stats["requests"] == len(sent)
    assert stats["completions_per_key"] == keys(*sent.values())
    # Cost: batchstream's pricer, which is genai-prices' figure.
    for row in rows:
        assert row["cost_usd"] == Pricer().cost(row["model"], row["usage"])
        assert row["cost_usd"] == genai_cost(row["model"], row["usage"])
        assert row["cost_usd"] > 0
    assert_summary(tmp_path / "in.results.summary.jsonl", rows)
    # The stderr table and the closing lines name both files.
    assert done.stderr.endswith(
        "batchstream: results: in.results.jsonl\nbatchstream: summary: in.results.summary.jsonl\n"
    )
    assert_no_key(done.stderr, *files(tmp_path).values())


def test_the_sample_file_runs_on_the_built_in_simulator(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "prompts.jsonl", tmp_path / "prompts.jsonl")
    requests = list(iter_requests(tmp_path / "prompts.jsonl", Defaults()))

    done = run_cli("run", "prompts.jsonl", "--simulate", "-q", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    rows = read_jsonl(tmp_path / "prompts.results.jsonl")
    assert len(rows) == 40
    got = by_id(rows)
    assert sorted(got) == sorted(request.id for request in requests)
    for request in requests:
        assert_ok(got[request.id], request.params)
    assert_summary(tmp_path / "prompts.results.summary.jsonl", rows)


def test_price_file_prices_a_made_up_model_an_unknown_model_costs_null_and_summary_path(
    tmp_path: Path, simulator
) -> None:
    made_up, unknown = "sim-made-up-model", "sim-unknown-model"
    lines = [
        {"id": "made-up-1", "prompt": "First.", "model": made_up},
        {"id": "made-up-2", "prompt": "Second, a bit longer.", "model": made_up},
        {"id": "known", "prompt": "Priced by genai-prices.", "model": DEFAULT_MODEL},
        {"id": "unknown-1", "prompt": "Third."},
        {"id": "unknown-2", "prompt": "Fourth."},
    ]
    write_jsonl(tmp_path / "in.jsonl", lines)
    prices = tmp_path / "prices.json"
    prices.write_text('{"sim-made-up-model": {"input": 2.5, "output": 12.25}}')
    (tmp_path / "sums").mkdir()

    done = run_cli(
        "run", "in.jsonl", "-q", "--model", unknown, "--price-file", "prices.json",
        "--summary", "sums/s.jsonl", cwd=tmp_path, base_url=simulator.base_url,
    )  # fmt: skip

    # An unknown model still runs (exit 0) and warns once for the model, not once per item.
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "batchstream: warning: no price known for model 'sim-unknown-model': cost_usd is null "
        "(give prices with --price-file)\n"
    )
    # --summary names the summary; the results keep their default name.
    assert names(tmp_path) == ["in.jsonl", "in.results.jsonl", "prices.json", "sums"]
    assert names(tmp_path / "sums") == ["s.jsonl"]
    got = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    for line in lines:
        assert_ok(got[line["id"]], body(line["prompt"], model=line.get("model", unknown)))
    for item_id in ("made-up-1", "made-up-2"):
        usage = got[item_id]["usage"]
        exact = (Decimal("2.5") * usage["input_tokens"] + Decimal("12.25") * usage["output_tokens"]) / 10**6
        assert got[item_id]["cost_usd"] == float(exact)
        assert got[item_id]["cost_usd"] == Pricer(prices).cost(made_up, usage)
    assert got["known"]["cost_usd"] == genai_cost(DEFAULT_MODEL, got["known"]["usage"])
    # Never a silent 0: null, counted as unpriced.
    assert got["unknown-1"]["cost_usd"] is None
    assert got["unknown-2"]["cost_usd"] is None
    summary = read_jsonl(tmp_path / "sums" / "s.jsonl")
    assert [(line.get("model"), line["cost_usd"] is None, line["unpriced_items"]) for line in summary] == [
        (DEFAULT_MODEL, False, 0),
        (made_up, False, 0),
        (unknown, True, 2),
        (None, False, 2),
    ]
    assert_summary(tmp_path / "sums" / "s.jsonl", list(got.values()))


def test_cli_defaults_fill_what_a_line_leaves_out_the_line_wins_and_output_path(
    tmp_path: Path, simulator
) -> None:
    write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "filled", "prompt": "Fill everything in."},
            {
                "id": "own",
                "prompt": "Everything is mine.",
                "model": SONNET_4_6,
                "max_tokens": 7,
                "system": "Own system.",
                "temperature": 0.0,
            },
            {
                "custom_id": "own-budget",
                "params": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 9},
            },
        ],
    )
    defaults = {"model": HAIKU, "max_tokens": 40, "system": "Default system.", "temperature": 0.25}
    sent = {
        "filled": body("Fill everything in.", **defaults),
        "own": body(
            "Everything is mine.", model=SONNET_4_6, max_tokens=7, system="Own system.", temperature=0.0
        ),
        "own-budget": body("Hi", **{**defaults, "max_tokens": 9}),
    }

    done = run_cli(
        "run", "in.jsonl", "-q", "-o", "out.jsonl", "--model", HAIKU, "--max-tokens", "40",
        "--system", "Default system.", "--temperature", "0.25", "--api-version", "2023-06-01",
        cwd=tmp_path, base_url=simulator.base_url,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    # -o names the results; the summary is named after them.
    assert names(tmp_path) == ["in.jsonl", "out.jsonl", "out.summary.jsonl"]
    # The simulator saw exactly these bodies: defaults filled in, a line's own values (even 0.0) kept.
    assert simulator.stats()["completions_per_key"] == keys(*sent.values())
    rows = read_jsonl(tmp_path / "out.jsonl")
    got = by_id(rows)
    for item_id, request in sent.items():
        assert_ok(got[item_id], request)
    assert got["own"]["stop_reason"] == "max_tokens"  # its own max_tokens 7, not the default 40
    assert got["own"]["usage"]["output_tokens"] == 7
    assert_summary(tmp_path / "out.summary.jsonl", rows)
    # --temperature needs --api-version 2023-06-01: the version the SDK sends refuses temperature.
    assert simulator.stats()["api_versions"] == {"2023-06-01": 3}


# --- resume -------------------------------------------------------------------------------------------------

SIX = [{"id": f"item-{n}", "prompt": f"Question number {n}?"} for n in range(6)]


def test_resume_runs_only_what_is_missing_refuses_a_changed_input_and_restart_starts_over(
    tmp_path: Path, simulator
) -> None:
    write_jsonl(tmp_path / "in.jsonl", SIX)
    results = tmp_path / "in.results.jsonl"
    sent = {line["id"]: body(line["prompt"]) for line in SIX}

    def run() -> subprocess.CompletedProcess[str]:
        return run_cli("run", "in.jsonl", "-q", cwd=tmp_path, base_url=simulator.base_url)

    first = run()
    assert first.returncode == 0, first.stderr
    assert simulator.stats()["requests"] == 6
    written = results.read_bytes()

    # Everything done: nothing is sent and the results file stays byte for byte.
    again = run()
    assert again.returncode == 0, again.stderr
    assert (again.stdout, again.stderr) == ("", "")
    assert simulator.stats()["requests"] == 6
    assert results.read_bytes() == written
    assert_summary(tmp_path / "in.results.summary.jsonl", read_jsonl(results))

    # Lines lost, and a crash in the middle of the last one: exactly those three items run again.
    old = written.splitlines(keepends=True)
    kept = old[0] + old[2] + old[4]
    lost = {orjson.loads(old[i])["id"] for i in (1, 3, 5)}
    results.write_bytes(kept + old[5][: len(old[5]) // 2])

    resumed = run()

    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr == (
        "batchstream: in.results.jsonl: dropped a half-written last line (left by a crash); "
        "that item runs again\n"
    )
    stats = simulator.stats()
    assert stats["requests"] == 9
    assert stats["completions_per_key"] == {request_key(sent[i]): 2 if i in lost else 1 for i in sent}
    assert results.read_bytes().startswith(kept)
    rows = read_jsonl(results)
    assert len(rows) == 6
    assert {row["id"] for row in rows[3:]} == lost
    got = by_id(rows)
    assert sorted(got) == sorted(sent)
    for item_id, request in sent.items():
        assert_ok(got[item_id], request)
    assert_summary(tmp_path / "in.results.summary.jsonl", rows)
    written = results.read_bytes()

    # A recorded item whose prompt changed: refused, naming it, nothing sent, the file byte-identical.
    changed_lines = [dict(line) for line in SIX]
    changed_lines[2]["prompt"] = "Question number two, rephrased?"
    write_jsonl(tmp_path / "in.jsonl", changed_lines)

    changed = run()

    assert changed.returncode == 2
    assert changed.stdout == ""
    assert changed.stderr == (
        "batchstream: error: in.results.jsonl: 1 recorded item(s) no longer match their input line "
        "(prompt or parameters changed): 'item-2'. Nothing was sent. To start over, add --restart (the old "
        "results are kept as a .bak file); to keep them, write to another file with -o.\n"
    )
    assert results.read_bytes() == written
    assert simulator.stats()["requests"] == 9

    # --restart: everything runs again from scratch, the old file kept as .bak.
    restarted = run_cli("run", "in.jsonl", "-q", "--restart", cwd=tmp_path, base_url=simulator.base_url)

    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stderr == "batchstream: --restart: previous results moved to in.results.jsonl.bak\n"
    assert (tmp_path / "in.results.jsonl.bak").read_bytes() == written
    sent["item-2"] = body("Question number two, rephrased?")
    stats = simulator.stats()
    assert stats["requests"] == 15
    assert stats["completions_per_key"] == {
        **{request_key(body(line["prompt"])): 3 if line["id"] in lost else 2 for line in SIX},
        # item-2's first prompt ran once, and once more if its line was among those lost above.
        request_key(body("Question number 2?")): 2 if "item-2" in lost else 1,
        request_key(sent["item-2"]): 1,
    }
    rows = read_jsonl(results)
    got = by_id(rows)
    assert sorted(got) == sorted(sent)
    for item_id, request in sent.items():
        assert_ok(got[item_id], request)
    assert_summary(tmp_path / "in.results.summary.jsonl", rows)


def test_a_resumed_runs_summary_equals_a_fresh_read_of_the_whole_results_file(
    tmp_path: Path, simulator
) -> None:
    """A run counts its own lines as it writes them and reads back only the earlier runs' lines: together
    they must be what reading the whole file gives, percentiles included, also once --ordered has moved
    this run's lines in among the earlier ones."""
    write_jsonl(tmp_path / "in.jsonl", SIX)
    results = tmp_path / "in.results.jsonl"
    first = run_cli("run", "in.jsonl", "-q", cwd=tmp_path, base_url=simulator.base_url)
    assert first.returncode == 0, first.stderr
    lines = {orjson.loads(line)["id"]: line for line in results.read_bytes().splitlines(keepends=True)}
    results.write_bytes(lines["item-5"] + lines["item-4"] + lines["item-3"])  # the first three run again

    resumed = run_cli("run", "in.jsonl", "--ordered", "-q", cwd=tmp_path, base_url=simulator.base_url)

    assert resumed.returncode == 0, resumed.stderr
    assert simulator.stats()["requests"] == 9
    rows = read_jsonl(results)
    assert [row["id"] for row in rows] == [line["id"] for line in SIX]
    this_run_only = {"wall_time_s", "items_per_s", "output_tokens_per_s", "stopped"}
    written = [
        {k: v for k, v in line.items() if k not in this_run_only}
        for line in read_jsonl(tmp_path / "in.results.summary.jsonl")
    ]
    fresh = [
        {k: v for k, v in line.items() if k not in this_run_only}
        for line in summarize_file(results, pricer=Pricer()).lines()
    ]
    assert written == fresh
    assert written[-1]["items"] == 6 and written[-1]["latency_p50_s"] is not None
    assert_summary(tmp_path / "in.results.summary.jsonl", rows)


def test_resume_trusts_an_unchanged_line_only_under_the_same_defaults_and_reads_older_results_in_full(
    tmp_path: Path, simulator
) -> None:
    write_jsonl(tmp_path / "in.jsonl", SIX)
    results = tmp_path / "in.results.jsonl"

    def run(*options: str) -> subprocess.CompletedProcess[str]:
        return run_cli("run", "in.jsonl", "-q", *options, cwd=tmp_path, base_url=simulator.base_url)

    first = run()
    assert first.returncode == 0, first.stderr
    # Each result records the hash of its input line's bytes and the defaults it was read with.
    line_hashes = {
        request.id: request.line_hash for request in iter_requests(tmp_path / "in.jsonl", Defaults())
    }
    assert {row["id"]: row["line_hash"] for row in read_jsonl(results)} == line_hashes
    written = results.read_bytes()

    # The same bytes under another default make other requests: refused like a changed line.
    other_default = run("--max-tokens", "50")
    assert other_default.returncode == 2
    assert "6 recorded item(s) no longer match their input line" in other_default.stderr
    assert results.read_bytes() == written

    # A results file from before line hashes were recorded: every line is compared in full, as it was then.
    rows = read_jsonl(results)
    for row in rows:
        del row["line_hash"]
    write_jsonl(results, rows)
    older = results.read_bytes()
    again = run()
    assert again.returncode == 0, again.stderr
    assert (again.stdout, again.stderr) == ("", "")
    assert results.read_bytes() == older
    assert_summary(tmp_path / "in.results.summary.jsonl", rows)
    changed_lines = [dict(line) for line in SIX]
    changed_lines[4]["prompt"] = "Question number four, rephrased?"
    write_jsonl(tmp_path / "in.jsonl", changed_lines)
    changed = run()
    assert changed.returncode == 2
    assert "1 recorded item(s) no longer match their input line (prompt or parameters changed): 'item-4'" in (
        changed.stderr
    )
    assert results.read_bytes() == older
    assert simulator.stats()["requests"] == 6


def test_errors_give_exit_1_and_run_again_only_with_retry_errors(tmp_path: Path, simulator_factory) -> None:
    lines = [
        *SIX[:3],
        {"id": "refused", "prompt": "Refuse me [[sim status=400]]", "meta": {"why": "directive"}},
    ]
    write_jsonl(tmp_path / "in.jsonl", lines)
    results = tmp_path / "in.results.jsonl"
    sent = {line["id"]: body(line["prompt"]) for line in lines}
    api_error = {"type": "invalid_request_error", "message": "Invalid request (simulated).", "status": 400}

    def assert_refused(row: Row) -> None:
        """Recorded as error with the API's own type, message and status; a 400 is never retried."""
        assert row["status"] == "error"
        assert row["error"] == api_error
        assert (row["attempts"], row["retries"]) == (1, {})
        assert (row["text"], row["usage"], row["cost_usd"]) == (None, None, None)
        assert row["request_id"].startswith("req_")

    # Every first attempt fails with a 400, so every item ends in error.
    failing = simulator_factory(fail_first=1, fail_kind="400")
    first = run_cli("run", "in.jsonl", "-q", cwd=tmp_path, base_url=failing.base_url)

    assert first.returncode == 1, first.stderr
    assert (first.stdout, first.stderr) == ("", "")
    got = by_id(read_jsonl(results))
    assert sorted(got) == sorted(sent)
    for row in got.values():
        assert_refused(row)
    assert got["refused"]["meta"] == {"why": "directive"}
    assert failing.stats()["requests"] == 4
    written = results.read_bytes()

    healthy = simulator_factory()
    # Without --retry-errors, recorded errors count as done: nothing is sent and the exit code stays 1.
    again = run_cli("run", "in.jsonl", "-q", cwd=tmp_path, base_url=healthy.base_url)
    assert again.returncode == 1, again.stderr
    assert (again.stdout, again.stderr) == ("", "")
    assert healthy.stats()["requests"] == 0
    assert results.read_bytes() == written

    retried = run_cli("run", "in.jsonl", "-q", "--retry-errors", cwd=tmp_path, base_url=healthy.base_url)

    # The three ordinary items now succeed; the one whose prompt asks for a 400 fails again: exit 1.
    assert retried.returncode == 1, retried.stderr
    assert retried.stderr == "batchstream: --retry-errors: 4 recorded error(s) will run again\n"
    stats = healthy.stats()
    assert stats["requests"] == 4
    assert stats["by_status"] == {"200": 3, "400": 1}
    assert stats["completions_per_key"] == keys(*(sent[i] for i in sent if i != "refused"))
    rows = read_jsonl(results)
    assert len(rows) == 4
    got = by_id(rows)
    for item_id in ("item-0", "item-1", "item-2"):
        assert_ok(got[item_id], sent[item_id])
    assert_refused(got["refused"])
    assert_summary(tmp_path / "in.results.summary.jsonl", rows)
    total = read_jsonl(tmp_path / "in.results.summary.jsonl")[-1]
    assert total["errors_by_type"] == {"invalid_request_error": 1}


def test_items_launch_once_each_in_file_order_from_the_first_wave_to_the_rest(
    tmp_path: Path, simulator
) -> None:
    """The first wave's requests are the ones planning read; the rest are read again from the input.

    At concurrency 1 results are written in launch order, so the file shows where the two meet.
    """
    lines = [{"id": f"o{n}", "prompt": f"Ordered {n}."} for n in range(8)]
    lines[1]["prompt"] = "Refuse me [[sim status=400]]"
    write_jsonl(tmp_path / "in.jsonl", lines)
    results = tmp_path / "in.results.jsonl"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("run", "in.jsonl", "-q", "-c", "1", *args, cwd=tmp_path, base_url=simulator.base_url)

    first = run()

    assert first.returncode == 1, first.stderr
    assert [row["id"] for row in read_jsonl(results)] == [line["id"] for line in lines]
    assert simulator.stats()["requests"] == 8

    # o5 and o6 lost; o1's error runs again. o1's line is unchanged since its result, so planning does not
    # read it in full: the first wave must not jump ahead of it to o5.
    rows = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(row for n, row in enumerate(rows) if n not in (5, 6)))

    retried = run("--retry-errors")

    assert retried.returncode == 1, retried.stderr
    assert [row["id"] for row in read_jsonl(results)] == ["o0", "o2", "o3", "o4", "o7", "o1", "o5", "o6"]
    assert simulator.stats()["requests"] == 11


def test_a_run_killed_part_way_resumes_without_paying_twice(tmp_path: Path, simulator_factory) -> None:
    lines = [{"id": f"k{n:02d}", "prompt": f"Slow item {n}."} for n in range(30)]
    write_jsonl(tmp_path / "in.jsonl", lines)
    results = tmp_path / "in.results.jsonl"
    sent = {line["id"]: body(line["prompt"]) for line in lines}
    slow = simulator_factory(tokens_per_s=50)

    proc = subprocess.Popen(
        [sys.executable, "-m", "batchstream", "run", "in.jsonl", "-q", "-c", "4"],
        cwd=tmp_path,
        env=cli_env(slow.base_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if results.exists() and results.read_bytes().count(b"\n") >= 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    at_kill = results.read_bytes()
    complete = at_kill[: at_kill.rfind(b"\n") + 1]
    done_before = {orjson.loads(line)["id"] for line in complete.splitlines()}
    assert 5 <= len(done_before) < 30
    slow_completed = slow.stats()["completions_per_key"]
    assert all(request_key(sent[item_id]) in slow_completed for item_id in done_before)

    fast = simulator_factory()
    resumed = run_cli("run", "in.jsonl", "-q", "-c", "4", cwd=tmp_path, base_url=fast.base_url)

    assert resumed.returncode == 0, resumed.stderr
    assert results.read_bytes().startswith(complete)
    rows = read_jsonl(results)
    got = by_id(rows)  # every id exactly once
    assert sorted(got) == sorted(sent)
    for item_id, request in sent.items():
        assert_ok(got[item_id], request)
    # Only what was not recorded ran again; finished items were not requested a second time.
    stats = fast.stats()
    assert stats["requests"] == 30 - len(done_before)
    assert stats["completions_per_key"] == keys(*(sent[i] for i in sent if i not in done_before))
    assert_summary(tmp_path / "in.results.summary.jsonl", rows)


# --- bad input ----------------------------------------------------------------------------------------------

MSG = '[{"role": "user", "content": "Hi"}]'


def refused_2026(key: str, older_model: str | None = None) -> str:
    """What validation says of a sampling parameter under API version 2026-10-21."""
    fix = (
        f"remove it ({DEFAULT_MODEL} refuses it on API version 2023-06-01 too)"
        if older_model is None
        else f"remove it, or run with --api-version 2023-06-01, where {older_model} still accepts it"
    )
    return (
        f'not accepted by API version 2026-10-21, at any value (the API answers 400 "{key}: Extra inputs are '
        f'not permitted"); {fix}'
    )


# Lines with exactly one problem each, worded as `batchstream.inputs` words it.
ONE_PROBLEM: list[tuple[str | bytes, str]] = [
    ("{nope", "invalid JSON: unexpected character, expected a string key at column 2"),
    ('{"id": "q", "prompt": "Hi"', "invalid JSON: unexpected end of data at column 27"),
    (b'{"id": "caf\xc3\xa9", "prompt": "\xff"}', "invalid UTF-8: byte 0xff at column 27 (byte offset 27)"),
    ("[1, 2]", "expected a JSON object, got array"),
    ('"just text"', 'expected a JSON object, got "just text"'),
    ('{"prompt": "Hi"}', "id: missing (give 'id', or 'custom_id' in the Message Batches form)"),
    ('{"id": "", "prompt": "Hi"}', 'id: expected a non-empty string, got ""'),
    ('{"id": 7, "prompt": "Hi"}', "id: expected a non-empty string, got 7"),
    (
        '{"id": "two-ids", "custom_id": "two-ids", "prompt": "Hi"}',
        "both 'id' and 'custom_id' given; keep one",
    ),
    (
        '{"custom_id": "no spaces allowed", "prompt": "Hi"}',
        f'custom_id: "no spaces allowed" does not match {RULE}',
    ),
    ('{"custom_id": "' + "x" * 65 + '", "prompt": "Hi"}', f'custom_id: "{"x" * 36}... does not match {RULE}'),
    ('{"id": "nothing"}', "no 'prompt' or 'messages'; give one"),
    (
        '{"id": "both-forms", "prompt": "Hi", "messages": ' + MSG + "}",
        "both 'prompt' and 'messages' given; keep one",
    ),
    ('{"id": "empty-prompt", "prompt": ""}', 'prompt: expected a non-empty string, got ""'),
    ('{"id": "list-prompt", "prompt": ["Hi"]}', "prompt: expected a non-empty string, got array"),
    ('{"id": "no-turns", "messages": []}', "messages: expected a non-empty list of messages, got []"),
    (
        '{"id": "obj-turns", "messages": {"role": "user"}}',
        "messages: expected a non-empty list of messages, got object",
    ),
    ('{"id": "str-turn", "messages": ["Hi"]}', 'messages[0]: expected a JSON object, got "Hi"'),
    (
        '{"id": "bot", "messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Yo"}]}',
        "messages[1].role: expected 'user' or 'assistant', got \"bot\"",
    ),
    (
        '{"id": "system-turn", "messages": [{"role": "system", "content": "Be brief."}]}',
        "messages[0].role: expected 'user' or 'assistant', got \"system\""
        " (put it in the top-level 'system' instead)",
    ),
    (
        '{"id": "content-object", "messages": [{"role": "user", "content": {"text": "Hi"}}]}',
        "messages[0].content: expected a string or a list of content blocks, got object",
    ),
    ('{"id": "m0", "prompt": "Hi", "model": ""}', 'model: expected a non-empty string, got ""'),
    ('{"id": "t1", "prompt": "Hi", "max_tokens": -1}', "max_tokens: expected an integer >= 0, got -1"),
    ('{"id": "t2", "prompt": "Hi", "max_tokens": 1.5}', "max_tokens: expected an integer >= 0, got 1.5"),
    ('{"id": "t3", "prompt": "Hi", "max_tokens": true}', "max_tokens: expected an integer >= 0, got true"),
    ('{"id": "t4", "prompt": "Hi", "max_tokens": "10"}', 'max_tokens: expected an integer >= 0, got "10"'),
    # API version 2026-10-21, which the SDK sends, refuses the sampling parameters whatever their value.
    ('{"id": "hot", "prompt": "Hi", "temperature": 1.2}', "temperature: " + refused_2026("temperature")),
    (
        '{"id": "p1", "prompt": "Hi", "model": "claude-haiku-4-5", "top_p": 0.9}',
        "top_p: " + refused_2026("top_p", "claude-haiku-4-5"),
    ),
    (
        '{"custom_id": "k1", "params": {"messages": ' + MSG + ', "model": "claude-haiku-4-5", "top_k": 0}}',
        "params.top_k: " + refused_2026("top_k", "claude-haiku-4-5"),
    ),
    (
        '{"id": "doc", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": '
        '[{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "D"}}]}]}',
        "messages[1].content[0]: a document block in an assistant message is not accepted by API version "
        "2026-10-21; move the document into a user message, or run with --api-version 2023-06-01",
    ),
    (
        '{"id": "cite", "messages": [{"role": "user", "content": [{"type": "text", "text": "T", "citations": '
        '[{"type": "char_location"}]}]}]}',
        "messages[0].content[0].citations: citations on a text block in a user message are not accepted by "
        "API version 2026-10-21; remove them, or run with --api-version 2023-06-01",
    ),
    (
        '{"id": "s1", "prompt": "Hi", "stop_sequences": "END"}',
        'stop_sequences: expected a list of strings, got "END"',
    ),
    (
        '{"id": "s2", "prompt": "Hi", "stop_sequences": ["a", 1]}',
        "stop_sequences[1]: expected a string, got 1",
    ),
    (
        '{"id": "sys", "prompt": "Hi", "system": {"text": "S"}}',
        "system: expected a string or a list of text blocks, got object",
    ),
    ('{"id": "b1", "prompt": "Hi", "betas": "b1"}', 'betas: expected a list of strings, got "b1"'),
    ('{"id": "b2", "prompt": "Hi", "betas": ["b1", ""]}', 'betas[1]: expected a non-empty string, got ""'),
    (
        '{"id": "streams", "prompt": "Hi", "stream": true}',
        "stream: batchstream always streams; remove 'stream'",
    ),
    ('{"id": "typo", "prompt": "Hi", "max_token": 5}', "max_token: unknown key; did you mean 'max_tokens'?"),
    ('{"id": "xyz", "prompt": "Hi", "xyzzy": 5}', "xyzzy: unknown key"),
    ('{"custom_id": "pa", "params": [1]}', "params: expected a JSON object, got array"),
    (
        '{"custom_id": "pc", "params": {"messages": ' + MSG + ', "betas": ["b"]}}',
        "params.betas: not part of the request body; put it at the top level, next to 'params'",
    ),
    ('{"custom_id": "pd", "params": {}}', "params.messages: missing"),
    (
        '{"custom_id": "pe", "params": {"messages": ' + MSG + ', "max_tokens": -2}}',
        "params.max_tokens: expected an integer >= 0, got -2",
    ),
    (
        '{"custom_id": "pf", "params": {"messages": [{"role": "user", "content": 3}]}}',
        "params.messages[0].content: expected a string or a list of content blocks, got 3",
    ),
    (
        '{"custom_id": "pg", "params": {"messages": ' + MSG + '}, "model": "m", "max_tokens": 5}',
        "params: cannot be combined with top-level 'max_tokens', 'model'; move them inside 'params'",
    ),
    (
        '{"custom_id": "ph", "params": {"messages": ' + MSG + '}, "prompt": "Hi"}',
        "params: cannot be combined with 'prompt'; put the conversation in params.messages",
    ),
]

# Cases of several lines or problems: the lines, and (index among those lines, message); "{first}" stands
# for the file's line number of the case's first line. A blank line is skipped but still counted.
SEVERAL: list[tuple[list[str | bytes], list[tuple[int, str]]]] = [
    (
        ['{"id": "half-turns", "messages": [{"content": "Hi"}, {"role": "user"}]}'],
        [(0, "messages[0].role: missing"), (0, "messages[1].content: missing")],
    ),
    (
        ['{"id": "misspelt", "promt": "Hi"}'],
        [(0, "promt: unknown key; did you mean 'prompt'?"), (0, "no 'prompt' or 'messages'; give one")],
    ),
    (
        ['{"custom_id": "pb", "params": {"messages": ' + MSG + ', "temprature": 0.5, "stream": true}}'],
        [
            (0, "params.temprature: unknown key; did you mean 'temperature'?"),
            (0, "params.stream: batchstream always streams; remove 'stream'"),
        ],
    ),
    (
        [
            '{"id": "dup", "prompt": "A"}',
            "",
            '{"id": "dup", "prompt": "B"}',
            '{"custom_id": "dup", "params": {"messages": ' + MSG + "}}",
        ],
        [
            (2, "id: duplicate id 'dup' (first on line {first})"),
            (3, "custom_id: duplicate id 'dup' (first on line {first})"),
        ],
    ),
    (
        ['{"id": "seen", "prompt": ""}', '{"id": "seen", "prompt": "B"}'],
        [
            (0, 'prompt: expected a non-empty string, got ""'),
            (1, "id: duplicate id 'seen' (first on line {first})"),
        ],
    ),
]
BAD_CASES = [([line], [(0, message)]) for line, message in ONE_PROBLEM] + SEVERAL

VALID = '{"id": "fine", "prompt": "Hi"}'


def bad_files() -> list[tuple[list[str | bytes], list[str]]]:
    """Pack the cases into files of at most 20 problems (all shown, none capped), each after a valid line."""
    packed: list[tuple[list[str | bytes], list[str]]] = []
    file_lines: list[str | bytes] = [VALID]
    problems: list[str] = []
    for case_lines, case_problems in BAD_CASES:
        if len(problems) + len(case_problems) > 20:
            packed.append((file_lines, problems))
            file_lines, problems = [VALID], []
        first = len(file_lines) + 1
        problems += [
            f":{first + index}: {message.replace('{first}', str(first))}" for index, message in case_problems
        ]
        file_lines += case_lines
    packed.append((file_lines, problems))
    return packed


def invalid_input(name: str, problems: list[str]) -> str:
    """All of stderr for bad input; a problem is what follows the file name (":LINE: ..." or ": ...")."""
    shown = "".join(f"{name}{problem}\n" for problem in problems)
    plural = "" if len(problems) == 1 else "s"
    return (
        f"batchstream: invalid input:\n{shown}"
        f"batchstream: {len(problems)} problem{plural} found; nothing was sent and no file was written\n"
    )


def prepare_refusals(directory: Path, base_url: str) -> list[Call]:
    """Bad input (through validate and run), no API key, a locked output: the calls and what each says."""
    calls: list[Call] = []

    def refused(name: str, problems: list[str]) -> None:
        for command in ("validate", "run"):
            calls.append(([command, name], None, invalid_input(name, problems)))

    for number, (lines, problems) in enumerate(bad_files(), 1):
        name = f"bad{number}.jsonl"
        (directory / name).write_bytes(
            b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
        )
        refused(name, problems)
    (directory / "empty.jsonl").write_bytes(b"\n  \n")
    refused("empty.jsonl", [": the file has no requests"])
    refused("missing.jsonl", [": cannot read the file: No such file or directory"])
    # An earlier run's results beside a now-broken input stay exactly as they were.
    (directory / "bad1.results.jsonl").write_bytes(b'{"id": "fine", "status": "ok", "request_hash": "0"}\n')

    write_jsonl(
        directory / "good.jsonl",
        [{"id": "a", "prompt": "Hi"}, {"custom_id": "b", "params": {"messages": TURNS}}],
    )
    calls.append((["validate", "good.jsonl"], None, "good.jsonl: 2 requests, all valid\n"))

    no_key = cli_env(base_url)
    del no_key["ANTHROPIC_API_KEY"]
    no_key_message = (
        "batchstream: error: no API key: set ANTHROPIC_API_KEY (export ANTHROPIC_API_KEY=sk-ant-...) or run "
        "against the built-in simulator with --simulate\n"
    )
    calls.append((["run", "good.jsonl"], no_key, no_key_message))

    # Another run holds the lock (see run_refusals) on an output that already records item "a".
    [first, _] = iter_requests(directory / "good.jsonl", Defaults())
    (directory / "good.results.jsonl").write_bytes(
        orjson.dumps({"id": "a", "status": "ok", "request_hash": first.request_hash}) + b"\n"
    )
    lock_message = (
        "batchstream: error: good.results.jsonl: another batchstream run is writing this file (lock held on "
        "good.results.jsonl.lock); wait for it to finish or choose another --output\n"
    )
    calls.append((["run", "good.jsonl"], None, lock_message))
    calls.append((["run", "good.jsonl", "--restart"], None, lock_message))  # --restart moves nothing either
    (directory / "good.results.jsonl.lock").touch()
    return calls


def run_refusals(directory: Path, base_url: str, calls: list[Call]) -> list[Completed]:
    fd = os.open(directory / "good.results.jsonl.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return [run_cli(*args, cwd=directory, base_url=base_url, env=env) for args, env, _ in calls]
    finally:
        os.close(fd)


def test_refusals_send_nothing_and_write_nothing(tmp_path: Path, simulator: SimulatorThread) -> None:
    """Bad input (through validate and run), no API key, a locked output: exit 2 at once, exact message."""
    assert sum(len(problems) for _, problems in bad_files()) == sum(len(p) for _, p in BAD_CASES)
    calls = prepare_refusals(tmp_path, simulator.base_url)
    before = files(tmp_path)
    outcomes = run_refusals(tmp_path, simulator.base_url, calls)
    wrong = [
        (args, done.returncode, done.stdout, done.stderr)
        for (args, _env, stderr), done in zip(calls, outcomes, strict=True)
        if (done.returncode, done.stdout, done.stderr)
        != (0 if args == ["validate", "good.jsonl"] else 2, "", stderr)
    ]
    assert wrong == []
    assert files(tmp_path) == before
    assert simulator.stats()["requests"] == 0


def test_an_empty_model_default_is_refused_by_run_as_by_validate(tmp_path: Path, simulator) -> None:
    """`--model ""` means "no default model": a line without a model is bad input for both commands."""
    write_jsonl(
        tmp_path / "in.jsonl", [{"id": "a", "prompt": "Hi", "model": HAIKU}, {"id": "b", "prompt": "Hi"}]
    )
    stderr = invalid_input("in.jsonl", [":2: model: missing, and no --model default"])

    validated, ran = (
        run_cli(command, "in.jsonl", "--model", "", cwd=tmp_path, base_url=simulator.base_url)
        for command in ("validate", "run")
    )

    assert (validated.returncode, validated.stdout, validated.stderr) == (2, "", stderr)
    assert (ran.returncode, ran.stdout, ran.stderr) == (2, "", stderr)
    assert names(tmp_path) == ["in.jsonl"]
    assert simulator.stats()["requests"] == 0


# --- help ---------------------------------------------------------------------------------------------------


COMMANDS = {
    "run": [
        "batchstream run prompts.jsonl --simulate",
        "batchstream run prompts.jsonl --retry-errors      # resume, and redo failed items",
        "0    every item ok",
        "130  interrupted (Ctrl-C / SIGTERM, or batches canceled by `batchstream cancel`);",
        "run the same command to resume",
    ],
    "validate": [
        "batchstream validate prompts.jsonl",
        "0  the file is valid",
        "2  problems found (listed on stderr)",
    ],
    "simulate": ["batchstream simulate --port 8765", "0  stopped with Ctrl-C / SIGTERM", "2  bad option"],
}


def test_help_of_each_command_shows_examples_and_exit_codes() -> None:
    helps = {command: run_cli(command, "--help") for command in COMMANDS}
    for command, done in helps.items():
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        lines = [line.strip() for line in done.stdout.splitlines()]
        assert done.stdout.startswith(f"Usage: batchstream {command} [OPTIONS]")
        assert "Examples:" in lines
        assert "Exit codes:" in lines
        for line in COMMANDS[command]:
            assert line in lines, (command, line)
    run_lines = [line.strip() for line in helps["run"].stdout.splitlines()]
    assert any(line.startswith("1    finished, but some items ended in error") for line in run_lines)
    assert any(line.startswith("2    usage or input error") for line in run_lines)


# --- API versions and models --------------------------------------------------------------------------------


def test_run_sends_the_sdks_api_version_by_default_and_api_version_on_request(
    tmp_path: Path, simulator_factory: Callable[..., SimulatorThread]
) -> None:
    """The header on the wire, as the simulator's request log and stats record it."""
    from anthropic._constants import ANTHROPIC_API_VERSION

    sampled = [
        {"id": "t0", "prompt": "Pick a colour.", "model": SONNET_4_6, "temperature": 0},
        {"custom_id": "t1", "params": {"messages": TURNS, "model": HAIKU, "top_p": 0.5, "top_k": 3}},
    ]
    write_jsonl(tmp_path / "plain.jsonl", [{"id": "p", "prompt": "Hi"}])
    write_jsonl(tmp_path / "sampled.jsonl", sampled)
    log = tmp_path / "sim.log.jsonl"
    simulator = simulator_factory(log_path=str(log))
    plain = run_cli("run", "plain.jsonl", "-q", cwd=tmp_path, base_url=simulator.base_url)
    legacy = run_cli(
        "run", "sampled.jsonl", "-q", "--api-version", "2023-06-01", cwd=tmp_path, base_url=simulator.base_url
    )
    assert (plain.returncode, legacy.returncode) == (0, 0), plain.stderr + legacy.stderr
    assert simulator.stats()["api_versions"] == {ANTHROPIC_API_VERSION: 1, "2023-06-01": 2}
    logged = [(line["api_version"], line["status"]) for line in read_jsonl(log)]
    assert logged == [(ANTHROPIC_API_VERSION, 200), ("2023-06-01", 200), ("2023-06-01", 200)]
    # The sampling parameters went out as the lines gave them.
    rows = by_id(read_jsonl(tmp_path / "sampled.results.jsonl"))
    assert_ok(rows["t0"], body("Pick a colour.", model=SONNET_4_6, temperature=0))
    assert_ok(rows["t1"], body(TURNS, model=HAIKU, top_p=0.5, top_k=3))


def test_temperature_option_needs_api_version_2023_06_01(tmp_path: Path, simulator) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Hi", "model": HAIKU}])
    message = (
        "Error: --temperature: API version 2026-10-21 does not accept temperature, at any value (the API "
        "answers 400); leave --temperature out, or add --api-version 2023-06-01 for a model that still "
        "accepts it there\n"
    )
    for command in ("validate", "run", "estimate"):
        done = run_cli(command, "in.jsonl", "--temperature", "0", cwd=tmp_path, base_url=simulator.base_url)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.endswith(message), (command, done.stderr)
    fine = run_cli(
        "validate", "in.jsonl", "--temperature", "0", "--api-version", "2023-06-01", cwd=tmp_path,
        base_url=simulator.base_url,
    )  # fmt: skip
    assert (fine.returncode, fine.stderr) == (0, "in.jsonl: 1 requests, all valid\n")
    bad = run_cli("validate", "in.jsonl", "--api-version", "2023-01-01", cwd=tmp_path)
    assert bad.returncode == 2
    assert "reads the streaming format of API version 2023-06-01 and later, not 2023-01-01" in bad.stderr
    assert names(tmp_path) == ["in.jsonl"]
    assert simulator.stats()["requests"] == 0


def test_deprecated_models_warn_once_per_model_and_do_not_fail(tmp_path: Path, simulator) -> None:
    from anthropic._data.deprecated_models import DEPRECATED_MODELS

    [old, *_] = sorted(DEPRECATED_MODELS)
    warning = (
        f"batchstream: warning: model {old!r} is deprecated and will reach end-of-life on "
        f"{DEPRECATED_MODELS[old]} (so says the installed anthropic SDK); move to a current model, see "
        "https://docs.anthropic.com/en/docs/resources/model-deprecations\n"
    )
    write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "prompt": "A", "model": old},
            {"id": "b", "prompt": "B", "model": old},
            {"id": "c", "prompt": "C"},
        ],
    )
    validated = run_cli("validate", "in.jsonl", cwd=tmp_path)
    assert (validated.returncode, validated.stderr) == (0, warning + "in.jsonl: 3 requests, all valid\n")
    ran = run_cli("run", "in.jsonl", "-q", cwd=tmp_path, base_url=simulator.base_url)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count(warning) == 1
    assert simulator.stats()["completed"] == 3
    # --model names the model of lines that give none: the same warning, once.
    write_jsonl(tmp_path / "bare.jsonl", [{"id": "x", "prompt": "X"}, {"id": "y", "prompt": "Y"}])
    estimated = run_cli(
        "estimate", "bare.jsonl", "--model", old, cwd=tmp_path, env=cli_env(None, ANTHROPIC_API_KEY="")
    )
    assert estimated.returncode == 0, estimated.stderr
    assert estimated.stderr.count(warning) == 1


def test_help_examples_name_current_models() -> None:
    import re
    import typing

    import click
    from anthropic._data.deprecated_models import DEPRECATED_MODELS
    from anthropic.types import Model

    from batchstream.cli import main

    current = set(typing.get_args(typing.get_args(Model)[0])) - set(DEPRECATED_MODELS)
    texts = [main.help or ""]
    for command in main.commands.values():
        texts.append(command.help or "")
        texts += [param.help or "" for param in command.params if isinstance(param, click.Option)]
        texts += [str(param.default) for param in command.params if isinstance(param, click.Option)]
    named = set(re.findall(r"claude-[a-z0-9-]*[a-z0-9]", "\n".join(texts)))
    assert DEFAULT_MODEL in named
    assert named <= current, named - current
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    in_readme = set(re.findall(r"claude-[a-z0-9-]*[a-z0-9]", readme))
    assert in_readme <= current, in_readme - current
