"""Simulator knobs: one dataclass whose field names are also the `batchstream simulate` flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("429", "529", "500", "error_event", "drop", "truncate", "stall", "400")

# The order in which probabilistic faults share the unit interval; changing it changes every seeded run.
PROBABILISTIC_FAULTS = ("429", "529", "500", "error_event", "drop", "truncate", "stall")

DEFAULT_REPLY_TOKENS = (20, 80)

# How an outage answers every request while it lasts: an error status, or a connection cut before any answer.
OUTAGE_KINDS = ("529", "500", "reset")
# Account states in which the API refuses every request, with the answer it gives (see wire.py).
ACCOUNT_STATES = ("credit_exhausted", "usage_limit", "spend_limit")


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    ttft_s: float = 0.05
    tokens_per_s: float = 0.0
    reply_tokens: tuple[int, int] = DEFAULT_REPLY_TOKENS
    api_key: str | None = None
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    p_429: float = 0.0
    p_529: float = 0.0
    p_500: float = 0.0
    p_error_event: float = 0.0
    p_drop: float = 0.0
    p_truncate: float = 0.0
    p_stall: float = 0.0
    stall_s: float = 3600.0
    fail_first: int = 0
    fail_kind: str = "529"
    retry_after_s: float = 1.0
    outage_s: float = 0.0  # from the first Messages request, every one fails with outage_kind for so long
    outage_kind: str = "529"
    account: str | None = None  # an account that cannot go on: every Messages request is refused
    missing_model: str | None = None  # a model the API does not have (or has retired): 404 not_found_error
    seed: int = 0
    log_path: str | None = None
    # The Message Batches API: how long a batch takes to end, and the share of its requests that end
    # errored with a transient error (overloaded_error / api_error) or expired instead of answered.
    batch_processing_s: float = 1.0
    p_batch_errored: float = 0.0
    p_batch_expired: float = 0.0
    batch_max_requests: int = 100_000
    # The first K create calls make their batch, then hang up before answering: the answer lost on the way.
    batch_create_drop_first: int = 0
    # The first K create calls are answered 529 overloaded_error, and no batch is made.
    batch_create_fail_first: int = 0

    def __post_init__(self) -> None:
        # Reject bad knobs at construction so a typo fails the CLI at once rather than skewing a benchmark.
        self.reply_tokens = (int(self.reply_tokens[0]), int(self.reply_tokens[1]))
        low, high = self.reply_tokens
        if not 0 <= low <= high:
            raise ValueError(f"reply_tokens must satisfy 0 <= min <= max, got {self.reply_tokens}")
        for kind in PROBABILISTIC_FAULTS:
            p = self.fault_probability(kind)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"p_{kind} must be in [0, 1], got {p}")
        total = sum(self.fault_probability(kind) for kind in PROBABILISTIC_FAULTS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"fault probabilities add up to {total:g}; at most one fault per attempt needs <= 1"
            )
        _one_of("fail_kind", self.fail_kind, FAULT_KINDS)
        _one_of("outage_kind", self.outage_kind, OUTAGE_KINDS)
        if self.account is not None:
            _one_of("account", self.account, ACCOUNT_STATES)
        if self.fail_first < 0:
            raise ValueError(f"fail_first must be >= 0, got {self.fail_first}")
        for name in ("rpm", "itpm", "otpm"):
            limit = getattr(self, name)
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be >= 1, got {limit}")
        if self.batch_processing_s < 0:
            raise ValueError(f"batch_processing_s must be >= 0, got {self.batch_processing_s}")
        if (
            not 0.0 <= self.p_batch_errored + self.p_batch_expired <= 1.0
            or min(self.p_batch_errored, self.p_batch_expired) < 0
        ):
            raise ValueError("p_batch_errored and p_batch_expired must be >= 0 and add up to at most 1")
        if min(self.batch_create_drop_first, self.batch_create_fail_first) < 0:
            raise ValueError("batch_create_drop_first and batch_create_fail_first must be >= 0")
        if self.batch_max_requests < 1:
            raise ValueError(f"batch_max_requests must be >= 1, got {self.batch_max_requests}")
        if min(self.ttft_s, self.tokens_per_s, self.stall_s, self.retry_after_s, self.outage_s) < 0:
            raise ValueError("ttft_s, tokens_per_s, stall_s, retry_after_s and outage_s must be >= 0")

    def fault_probability(self, kind: str) -> float:
        return float(getattr(self, f"p_{kind}"))

    @classmethod
    def from_options(cls, **options: Any) -> SimulatorConfig:
        """Build from CLI values, where an option left unset arrives as None and numbers may be strings.

        `reply_tokens` also accepts "MIN,MAX", "MIN-MAX" or a single "N"; "none" or "" turns off an optional
        knob (rpm, itpm, otpm, api_key, log_path).
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise TypeError(f"unknown simulator option(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in options.items():
            if value is None:
                continue
            annotation = str(fields[name].type)  # a string, as this module defers annotations
            blank = isinstance(value, str) and value.strip().lower() in ("", "none")
            if blank and annotation.endswith("| None"):
                kwargs[name] = None
            elif name == "reply_tokens":
                kwargs[name] = _parse_range(value)
            elif isinstance(value, str) and annotation in ("int", "int | None"):
                kwargs[name] = int(value)
            elif isinstance(value, str) and annotation == "float":
                kwargs[name] = float(value)
            else:
                kwargs[name] = value
        return cls(**kwargs)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _parse_range(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        parts = value.replace("-", ",").split(",")
        numbers = [int(part) for part in parts if part.strip()]
    else:
        numbers = [int(part) for part in value]
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    if len(numbers) != 2:
        raise ValueError(f"reply_tokens wants MIN,MAX, got {value!r}")
    return numbers[0], numbers[1]
