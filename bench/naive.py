"""The SDK documentation's concurrent streaming pattern, as a reference point for batchstream.

`asyncio.gather` over every item, an `asyncio.Semaphore(concurrency)` around each request, and
`client.messages.stream(...)` with the events iterated and `get_final_message()` awaited: exactly what a
user copying the docs would write. The client is the default `AsyncAnthropic` (httpx transport) with
`max_retries=0`, so that neither side spends CPU on retries the other does not make.

Run: python -m bench.naive INPUT -o OUTPUT --base-url URL -c N [--max-retries K]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import anthropic

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 1024


# Keys of an input line that are batchstream's, not part of the request body.
_LINE_KEYS = frozenset({"id", "custom_id", "prompt", "params", "meta", "betas"})


def _params(line: dict[str, Any]) -> dict[str, Any]:
    """The request body for one input line: its "params", or its top-level API fields and "prompt"."""
    params = dict(line.get("params") or {key: value for key, value in line.items() if key not in _LINE_KEYS})
    if "prompt" in line:
        params["messages"] = [{"role": "user", "content": line["prompt"]}]
    params.setdefault("model", DEFAULT_MODEL)
    params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    return params


async def _one(
    client: anthropic.AsyncAnthropic, semaphore: asyncio.Semaphore, line: dict[str, Any]
) -> dict[str, Any]:
    async with semaphore:
        line_id = line.get("id") or line.get("custom_id")
        started = time.monotonic()
        try:
            async with client.messages.stream(**_params(line)) as stream:
                async for _event in stream:
                    pass
                message = await stream.get_final_message()
        except anthropic.APIError as exc:
            status = getattr(exc, "status_code", None)
            return {"id": line_id, "status": "error", "error": {"status": status, "message": str(exc)}}
        return {
            "id": line_id,
            "status": "ok",
            "text": "".join(block.text for block in message.content if block.type == "text"),
            "tool_calls": [
                {"id": block.id, "name": block.name, "input": block.input}
                for block in message.content
                if block.type == "tool_use"
            ],
            "stop_reason": message.stop_reason,
            "usage": message.usage.model_dump(),
            "latency_s": round(time.monotonic() - started, 4),
        }


async def main_async(args: argparse.Namespace) -> int:
    with open(args.input, encoding="utf-8") as fh:
        lines = [json.loads(raw) for raw in fh if raw.strip()]
    client = anthropic.AsyncAnthropic(base_url=args.base_url, max_retries=args.max_retries)
    semaphore = asyncio.Semaphore(args.concurrency)
    try:
        results = await asyncio.gather(*(_one(client, semaphore, line) for line in lines))
    finally:
        await client.close()
    with open(args.output, "w", encoding="utf-8") as out:
        for result in results:
            out.write(json.dumps(result) + "\n")
    return 0 if all(result["status"] == "ok" for result in results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.naive", description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--max-retries", type=int, default=0)
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
