"""What one run is asked to do, grouped the way a user thinks of it and checked when it is built.

`RunConfig` holds the input and where requests go; `Output`, `Limits` and `RetryPolicy` group the rest
(as httpx groups `Timeout` and `Limits`). Each checks its own values on construction, so a library caller
gets the same clear `UsageError` the command line's option parsing gives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError
from .inputs import Defaults
from .shard import Shard

if TYPE_CHECKING:
    from .simulator import SimulatorConfig


def _positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{name} must be greater than 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one item is tried: attempts, the wait between them, and the time limits on each."""

    max_attempts: int = 8
    backoff_base: float = 0.5  # seconds; exponential with full jitter
    backoff_cap: float = 30.0
    stall_timeout: float = 60.0  # seconds without a byte before an attempt is abandoned
    timeout: float = 600.0  # seconds one attempt may take in all
    max_outage: float = 900.0  # seconds the API may stay unavailable before the run stops (exit 4)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise UsageError("backoff_base and backoff_cap must be >= 0")
        _positive("stall_timeout", self.stall_timeout)
        _positive("timeout", self.timeout)
        _positive("max_outage", self.max_outage)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before the next attempt; a server's retry-after is honoured exactly."""
        if retry_after is not None:
            return retry_after
        return rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Limits:
    """What a run may use at once and in all: open streams, client-side rate caps, dollars."""

    concurrency: int = 16  # a ceiling: the limiter lowers it when the service throttles
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    max_cost: float | None = None  # USD, for the whole results file

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {self.concurrency}")
        for name in ("rpm", "itpm", "otpm"):
            _positive(name, getattr(self, name))
        if self.max_cost is not None and self.max_cost < 0:
            raise UsageError(f"max_cost must be >= 0, got {self.max_cost}")


@dataclass(frozen=True, slots=True)
class Output:
    """Where results go. `path` is also the checkpoint a later run resumes from."""

    path: Path | None = None  # default: the input's name with .results.jsonl
    summary: Path | None = None  # default: the output's name with .summary.jsonl
    stdout: bool = False  # also stream each result line to stdout (`-o -`)
    ordered: bool = False  # rewrite the file in input order once the run completes
    content: bool = True  # keep the full `content` block list in each line

    def results_path(self, input_path: Path) -> Path:
        return self.path or default_output(input_path)


# The Message Batches API's own limits on one batch: requests, and bytes of the encoded create body.
# https://docs.anthropic.com/en/docs/build-with-claude/batch-processing#batch-limitations
BATCH_MAX_REQUESTS = 100_000
BATCH_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How `--via batches` submits and waits: the size of each batch, polling, and the deadline."""

    size: int = 10_000  # requests per batch at most (--batch-size)
    poll_interval: float | None = None  # seconds; None: from 5 s, growing to 60 s
    deadline: float | None = None  # seconds after its creation that a batch is canceled and its rest streamed
    max_bytes: int = BATCH_MAX_BYTES  # of one create request's body, as encoded

    def __post_init__(self) -> None:
        if not 1 <= self.size <= BATCH_MAX_REQUESTS:
            raise UsageError(f"batch size must be within [1, {BATCH_MAX_REQUESTS:,}], got {self.size}")
        _positive("poll_interval", self.poll_interval)
        _positive("batch deadline", self.deadline)
        if not 1024 <= self.max_bytes <= BATCH_MAX_BYTES:
            raise UsageError(f"max_bytes must be within [1024, {BATCH_MAX_BYTES}], got {self.max_bytes}")


VIAS = ("stream", "batches")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; the CLI fills it from its options, library users build it directly."""

    input: Path
    output: Output = field(default_factory=Output)
    defaults: Defaults = field(default_factory=Defaults)
    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    api_key: str | None = None  # None: the SDK's own default (ANTHROPIC_API_KEY)
    base_url: str | None = None  # None: the SDK's own default (ANTHROPIC_BASE_URL, else the API)
    simulate: bool = False  # start the built-in simulator for this run and send everything there
    simulator: SimulatorConfig | None = None  # its knobs, with simulate
    retry_errors: bool = False
    restart: bool = False
    price_file: Path | None = None
    shard: Shard | None = None
    fail_on_error_rate: float | None = None
    seed: int | None = None  # for the backoff's jitter
    auto_cache: bool = True  # mark and warm the prompt prefixes items share (caching.py); --no-auto-cache
    via: str = "stream"  # or "batches": the Message Batches API, at half the price
    batches: BatchOptions = field(default_factory=BatchOptions)

    def __post_init__(self) -> None:
        if self.via not in VIAS:
            raise UsageError(f"via must be one of {', '.join(VIAS)}, got {self.via!r}")
        if self.via == "batches" and self.output.stdout and self.output.path is None:
            raise UsageError(
                "--via batches keeps a journal of its batches next to the results file, and -o - has none: "
                "give --checkpoint PATH as well"
            )
        if self.fail_on_error_rate is not None and not 0 <= self.fail_on_error_rate <= 1:
            raise UsageError(f"fail_on_error_rate must be within [0, 1], got {self.fail_on_error_rate}")
        if self.output.stdout and self.output.path is None and (self.restart or self.retry_errors):
            raise UsageError(
                "-o - keeps no checkpoint, so there is nothing to resume, restart or retry: "
                "give --checkpoint PATH as well"
            )


def default_output(input_path: Path) -> Path:
    return _replace_jsonl(input_path, ".results.jsonl")


def default_summary(output: Path) -> Path:
    return _replace_jsonl(output, ".summary.jsonl")


def _replace_jsonl(path: Path, suffix: str) -> Path:
    """`in.jsonl` -> `in{suffix}`; a name without `.jsonl` keeps its whole name before the suffix."""
    return path.with_name(path.name.removesuffix(".jsonl") + suffix)
