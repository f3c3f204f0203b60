"""Commands: what a caller asks the bookstore to do, as one immutable value.

A command is named in the imperative (``PlaceOrder``) and carries everything the request
says, nothing the service adds: no prices (the catalog sets those), no order id (the
service draws one), no clients or stores (those are wired once, at start-up). Passing one
value instead of loose arguments keeps every flow's signature the same, ``place(command)``,
so the servicer does not care which flow it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bookstore.domain.models import OrderItem


@dataclass(frozen=True)
class PlaceOrder:
    """Place an order of ``items`` for ``user_id``; ``request_id`` makes a retry safe.

    Nothing is checked here: a flow validates the command and names the faulty field.
    """

    user_id: str
    items: tuple[OrderItem, ...]
    request_id: str = ""

    @classmethod
    def of(cls, user_id: str, items: Sequence[OrderItem], request_id: str = "") -> PlaceOrder:
        return cls(user_id=user_id, items=tuple(items), request_id=request_id)
