"""Which fault, if any, strikes an attempt.

Every decision is drawn from a PRNG seeded with (seed, key, attempt) and nothing else, so a rerun sees the
same faults whatever order concurrent requests arrive in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .config import PROBABILISTIC_FAULTS, SimulatorConfig

STATUS_FAULTS = {"400": 400, "429": 429, "500": 500, "529": 529}


@dataclass(frozen=True)
class Fault:
    kind: str
    position: float  # in [0, 1): where in the reply a mid-stream fault strikes

    def cut(self, token_count: int) -> int:
        """How many deltas go out before a mid-stream fault: at least one, and never the last one."""
        if token_count <= 1:
            return token_count
        return 1 + int(self.position * (token_count - 1))


def decide_fault(config: SimulatorConfig, key: str, attempt: int, scripted: tuple[str, ...]) -> Fault | None:
    """A `[[sim fail=...]]` script wins, then `fail_first`, then the configured probabilities."""
    rng = random.Random(f"{config.seed}:{key}:{attempt}")
    roll = rng.random()
    position = rng.random()
    if attempt <= len(scripted):
        return Fault(scripted[attempt - 1], position)
    if attempt <= config.fail_first:
        return Fault(config.fail_kind, position)
    threshold = 0.0
    for kind in PROBABILISTIC_FAULTS:
        threshold += config.fault_probability(kind)
        if roll < threshold:
            return Fault(kind, position)
    return None
