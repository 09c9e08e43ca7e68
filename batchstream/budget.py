"""--max-cost: never launch a request that could take the spend past the budget.

Each in-flight item holds a reservation at its worst case (estimated input plus its full `max_tokens` of
output); when it finishes the reservation is replaced by what it really cost. An item that does not fit
waits for in-flight items to settle, and the run stops only when it still does not fit with nothing in
flight: the budget is used as fully as it safely can be.
"""

from __future__ import annotations

import asyncio

from .inputs import Request
from .pricing import Pricer
from .tokens import estimate_input_tokens


class Budget:
    def __init__(self, limit_usd: float, spent_before: float, pricer: Pricer) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = spent_before
        self.reserved_usd = 0.0
        self._held = 0  # reservations in flight; counted, since float sums of reservations never return to 0
        self._pricer = pricer
        self._settled = asyncio.Event()

    def worst_case(self, request: Request, *, batch: bool = False) -> float:
        """USD at most for `request`: its input and all of max_tokens; with `batch`, at the batch price."""
        model = request.params["model"]
        usage = {
            "input_tokens": estimate_input_tokens(request.params),
            "output_tokens": int(request.params.get("max_tokens") or 0),
        }
        cost = self._pricer.cost(model, usage, batch=batch)
        assert cost is not None, "the run checks every model has a price before it starts"
        return cost

    async def reserve(self, worst_usd: float) -> bool:
        """Hold `worst_usd` for one item; False when it can never fit (the run stops launching)."""
        while self.spent_usd + self.reserved_usd + worst_usd > self.limit_usd:
            if not self._held:
                return False
            settled = self._settled
            await settled.wait()
        self.reserved_usd += worst_usd
        self._held += 1
        return True

    def try_reserve(self, worst_usd: float) -> bool:
        """Hold `worst_usd` if it fits now, without waiting: a batch's items are reserved as it is built,
        and a cache warm-up, which items wait on, must not wait for their reservations to settle (a
        deadlock)."""
        if self.spent_usd + self.reserved_usd + worst_usd > self.limit_usd:
            return False
        self.hold(worst_usd)
        return True

    def hold(self, worst_usd: float) -> None:
        """Hold `worst_usd` whether it fits or not: for an item already submitted (a batch re-attached)."""
        self.reserved_usd += worst_usd
        self._held += 1

    @property
    def holding(self) -> bool:
        """Whether any reservation is still held: if so, what does not fit now may fit once it settles."""
        return self._held > 0

    def settle(self, worst_usd: float, actual_usd: float | None) -> None:
        self._held -= 1
        self.reserved_usd = self.reserved_usd - worst_usd if self._held else 0.0
        self.spent_usd += actual_usd or 0.0
        self._settled.set()
        self._settled = asyncio.Event()
