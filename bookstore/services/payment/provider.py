"""A simulated card provider.

Real providers decline for many reasons; ours declines one, deterministically, so tests and
notebooks can trigger a refusal on purpose: an amount above the card limit
(``BOOKSTORE_PAYMENT_LIMIT_CENTS``, default 50000 = $500.00).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_LIMIT_CENTS = 50_000


@dataclass(frozen=True)
class ProviderDecision:
    approved: bool
    reason: str = ""


class SimulatedProvider:
    def __init__(self, limit_cents: int | None = None) -> None:
        if limit_cents is None:
            limit_cents = int(os.environ.get("BOOKSTORE_PAYMENT_LIMIT_CENTS", DEFAULT_LIMIT_CENTS))
        self.limit_cents = limit_cents

    def charge(self, amount_cents: int) -> ProviderDecision:
        if amount_cents > self.limit_cents:
            return ProviderDecision(
                False, f"amount {amount_cents} exceeds the card limit of {self.limit_cents} cents"
            )
        return ProviderDecision(True)
