"""Simulator knobs: one dataclass whose field names are also the `batchstream simulate` flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("429", "529", "500", "error_event", "drop", "truncate", "stall", "400")

# The order in which probabilistic faults share the unit interval; changing it changes every seeded run.
PROBABILISTIC_FAULTS = ("429", "529", "500", "error_event", "drop", "truncate", "stall")

DEFAULT_REPLY_TOKENS = (20, 80)


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
    seed: int = 0
    log_path: str | None = None

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
        if self.fail_kind not in FAULT_KINDS:
            raise ValueError(f"fail_kind must be one of {', '.join(FAULT_KINDS)}, got {self.fail_kind!r}")
        if self.fail_first < 0:
            raise ValueError(f"fail_first must be >= 0, got {self.fail_first}")
        for name in ("rpm", "itpm", "otpm"):
            limit = getattr(self, name)
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be >= 1, got {limit}")
        if self.ttft_s < 0 or self.tokens_per_s < 0 or self.stall_s < 0 or self.retry_after_s < 0:
            raise ValueError("ttft_s, tokens_per_s, stall_s and retry_after_s must be >= 0")

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
