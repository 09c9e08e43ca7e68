"""--max-cost: never launch a request that could take the spend past the budget.

Each in-flight item holds a reservation at its worst case (estimated input plus its full `max_tokens` of
output); when it finishes the reservation is replaced by what it really cost. An item that does not fit
waits for in-flight items to settle, and the run stops only when it still does not fit with nothing in
flight: the budget is used as fully as it safely can be.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from .errors import UsageError
from .inputs import Request
from .pricing import Pricer


class Budget:
    def __init__(
        self, limit_usd: float, spent_before: float, pricer: Pricer, estimate: Callable[[Request], int]
    ) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = spent_before
        self.reserved_usd = 0.0
        self._pricer = pricer
        self._estimate = estimate
        self._settled = anyio.Event()

    def worst_case(self, request: Request) -> float:
        model = str(request.params.get("model"))
        usage = {
            "input_tokens": self._estimate(request),
            "output_tokens": int(request.params.get("max_tokens") or 0),
        }
        cost = self._pricer.cost(model, usage)
        if cost is None:
            raise UsageError(
                f"--max-cost needs a price for every model, and none is known for {model!r} "
                "(give one with --price-file)"
            )
        return cost

    async def reserve(self, worst_usd: float) -> bool:
        """Hold `worst_usd` for one item; False when it can never fit (the run stops launching)."""
        while self.spent_usd + self.reserved_usd + worst_usd > self.limit_usd:
            if self.reserved_usd <= 0:
                return False
            settled = self._settled
            await settled.wait()
        self.reserved_usd += worst_usd
        return True

    def settle(self, worst_usd: float, actual_usd: float | None) -> None:
        self.reserved_usd = max(0.0, self.reserved_usd - worst_usd)
        self.spent_usd += actual_usd or 0.0
        self._settled.set()
        self._settled = anyio.Event()
