"""The simulator's rate limits, enforced as the API documents them: bucket arithmetic on a fake clock, and
the headers and 429s on the wire."""

from __future__ import annotations

import datetime
import time

import httpx2
import orjson
import pytest
from conftest import Clock

from batchstream.simulator import SimulatorConfig, SimulatorThread
from batchstream.simulator.ratelimit import RateLimits, itpm_charge, rate_limit_headers, refusal_message

MODEL = "claude-sonnet-5-5"
API_HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"}
FAMILIES = ("requests", "input-tokens", "output-tokens", "tokens")


def test_input_is_charged_at_the_start_and_output_held_at_max_tokens_until_the_reply_ends() -> None:
    clock = Clock()
    limits = RateLimits(None, 6_000, 1_200, clock=clock)
    admission = limits.admit(2_000, 500)
    assert admission.allowed and admission.reserved == 500
    _, inputs, outputs = limits.buckets
    assert inputs is not None and outputs is not None
    assert (inputs.level, outputs.level) == (4_000, 700)
    limits.settle(admission, 120)  # the reply was 120 tokens: 380 come back
    assert outputs.level == 1_080
    clock.now += 3  # refilled at limit/60 a second
    limits.peek()
    assert (inputs.level, outputs.level) == (4_300, 1_140)
    clock.now += 600
    limits.peek()
    assert (inputs.level, outputs.level) == (6_000, 1_200)  # never above the limit


def test_a_request_that_does_not_fit_is_refused_uncharged_with_the_wait_until_it_would() -> None:
    clock = Clock()
    limits = RateLimits(10, 6_000, None, clock=clock)
    assert limits.admit(5_000, 0).allowed
    refused = limits.admit(2_000, 0)
    assert not refused.allowed
    assert refused.refused_by == "input-tokens"
    assert refused.wait_s == pytest.approx((2_000 - 1_000) / 100)
    requests, inputs, _ = limits.buckets
    assert requests is not None and inputs is not None
    assert (requests.level, inputs.level) == (9, 1_000)
    assert refusal_message(limits, "input-tokens").startswith(
        "This request would exceed your organization's rate limit of 6,000 input tokens per minute."
    )


def test_a_request_larger_than_a_whole_bucket_passes_only_when_the_bucket_is_full() -> None:
    clock = Clock()
    limits = RateLimits(None, None, 1_200, clock=clock)
    assert limits.admit(0, 5_000).allowed  # max_tokens over the whole limit: into debt
    refused = limits.admit(0, 10)
    assert not refused.allowed and refused.refused_by == "output-tokens"
    assert refused.wait_s == pytest.approx((10 + 3_800) / 20)


def test_cache_reads_are_free_against_the_input_limit_except_for_the_models_the_docs_name() -> None:
    usage = {"input_tokens": 100, "cache_creation_input_tokens": 50, "cache_read_input_tokens": 1_000}
    assert itpm_charge(usage, MODEL) == 150
    assert itpm_charge(usage, "claude-3-5-haiku-20241022") == 1_150
    assert itpm_charge({"input_tokens": 7}, MODEL) == 7


def parse(lines: bytes) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in lines.decode().splitlines())  # type: ignore[misc]


def test_headers_round_token_counts_and_name_the_more_restrictive_token_limit() -> None:
    clock = Clock()
    limits = RateLimits(60, 100_000, 10_000, clock=clock)
    before = time.time()
    headers = parse(rate_limit_headers(limits.admit(30_400, 8_000)))
    assert headers["anthropic-ratelimit-requests-remaining"] == "59"
    assert headers["anthropic-ratelimit-input-tokens-remaining"] == "70000"  # 69,600, to the thousand
    assert headers["anthropic-ratelimit-output-tokens-remaining"] == "2000"
    # Output has 20% left, input 70%: the tokens-* family is the output one.
    assert headers["anthropic-ratelimit-tokens-limit"] == "10000"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "2000"
    # Full again once 8,000 output tokens have come back at 10,000/60 a second: 48 s from now.
    reset = datetime.datetime.fromisoformat(headers["anthropic-ratelimit-output-tokens-reset"]).timestamp()
    assert before + 47 <= reset <= time.time() + 49


def post(sim: SimulatorThread, text: str, **extra: object) -> httpx2.Response:
    body = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": text}], **extra}
    return httpx2.post(f"{sim.base_url}/v1/messages", content=orjson.dumps(body), headers=API_HEADERS)


def test_an_input_limit_on_the_wire_every_reply_has_all_headers_and_the_429_says_when() -> None:
    prompt = "x" * 8_000  # 2,000 tokens of text, 2,004 with the message's framing
    with SimulatorThread(SimulatorConfig(ttft_s=0, itpm=3_000, otpm=50_000)) as sim:
        streamed = post(sim, prompt, stream=True)
        refused = post(sim, prompt)
        stats = sim.stats()
    for response in (streamed, refused):
        for family in FAMILIES:
            for part in ("limit", "remaining", "reset"):
                assert f"anthropic-ratelimit-{family}-{part}" in response.headers
    assert streamed.status_code == 200
    assert streamed.headers["anthropic-ratelimit-input-tokens-limit"] == "3000"
    assert streamed.headers["anthropic-ratelimit-input-tokens-remaining"] == "1000"  # 996, rounded
    assert streamed.headers["anthropic-ratelimit-output-tokens-limit"] == "50000"
    assert streamed.headers["anthropic-ratelimit-output-tokens-remaining"] == "49000"  # 1,024 held
    assert refused.status_code == 429
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "3,000 input tokens per minute" in refused.json()["error"]["message"]
    assert refused.json()["request_id"] == refused.headers["request-id"]
    # 1,008 more tokens at 50 a second: 21 s, in whole seconds.
    assert int(refused.headers["retry-after"]) == 21
    assert stats["rate_limited"] == 1 and stats["by_status"] == {"200": 1, "429": 1}


def test_a_reply_gives_back_the_output_tokens_it_did_not_use() -> None:
    """max_tokens 4,000 under a 5,000 limit: held whole while the first reply streams, a second request
    still passes once it has ended, as only its 20-odd tokens stay counted."""
    with SimulatorThread(SimulatorConfig(ttft_s=0, otpm=5_000)) as sim:
        first = post(sim, "first", max_tokens=4_000)
        second = post(sim, "second", max_tokens=4_000)
        third = post(sim, "third", max_tokens=4_000)  # the second's reply is done too, but not refilled
    assert first.headers["anthropic-ratelimit-output-tokens-remaining"] == "1000"
    assert second.status_code == 200, second.text
    assert third.status_code == 200, third.text
    used = sum(r.json()["usage"]["output_tokens"] for r in (first, second))
    assert used < 500
    assert first.headers["anthropic-ratelimit-requests-limit"] == "50000"  # no RPM limit configured
