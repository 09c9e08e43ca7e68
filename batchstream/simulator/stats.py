"""What the simulator saw, kept so tests and benchmarks can check a client's behaviour from the server side.

All mutation happens on the server's event loop; other threads read through `SimulatorThread.stats()`.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from typing import IO, Any

import orjson


class Stats:
    def __init__(self) -> None:
        self.completed = 0
        self.rate_limited = 0
        self.by_status: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.attempts_per_key: Counter[str] = Counter()
        self.completions_per_key: Counter[str] = Counter()
        self.betas: Counter[str] = Counter()
        # The anthropic-version header of every API request that had one.
        self.api_versions: Counter[str] = Counter()
        # time.monotonic() (CLOCK_MONOTONIC, the same clock in every process on the machine) of every request
        # since the start or the last reset, in arrival order, 8 bytes each: a benchmark times a client's
        # run from the first, and sees how far apart the requests of each wave arrived.
        self.request_times = array("d")

    def saw_request(self) -> None:
        self.request_times.append(time.monotonic())

    def next_attempt(self, key: str) -> int:
        # Not `+= 1`: on a key not seen before (nearly every one) that goes through `Counter.__missing__`,
        # a Python call, and this runs for every request.
        attempt = self.attempts_per_key.get(key, 0) + 1
        self.attempts_per_key[key] = attempt
        return attempt

    def saw_betas(self, header: str | None) -> None:
        """Count each beta named in an `anthropic-beta` header (the SDK joins them with commas)."""
        if header:
            self.betas.update(name for name in (part.strip() for part in header.split(",")) if name)

    def saw_api_version(self, version: str) -> None:
        self.api_versions[version] = self.api_versions.get(version, 0) + 1  # as in `next_attempt`

    def complete(self, key: str) -> None:
        self.completed += 1
        self.completions_per_key[key] = self.completions_per_key.get(key, 0) + 1  # as in `next_attempt`

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": len(self.request_times),
            "first_request_at": self.request_times[0] if self.request_times else None,
            "completed": self.completed,
            "rate_limited": self.rate_limited,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "faults": dict(sorted(self.faults.items())),
            "completions_per_key": dict(self.completions_per_key),
            "max_completions_per_key": max(self.completions_per_key.values(), default=0),
            "attempts_per_key": dict(self.attempts_per_key),
            "betas": dict(sorted(self.betas.items())),
            "api_versions": dict(sorted(self.api_versions.items())),
        }


class RequestLog:
    """One JSON line per request, written unbuffered so a killed simulator still leaves a complete record."""

    def __init__(self, path: str | None) -> None:
        self._file: IO[bytes] | None = open(path, "ab", buffering=0) if path else None  # noqa: SIM115

    def write(
        self,
        key: str | None,
        attempt: int | None,
        outcome: str,
        status: int | None,
        model: str | None,
        output_tokens: int,
        api_version: str | None = None,
    ) -> None:
        if self._file is None:
            return
        line = {
            "key": key,
            "attempt": attempt,
            "outcome": outcome,
            "status": status,
            "model": model,
            "output_tokens": output_tokens,
            "api_version": api_version,
        }
        self._file.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
