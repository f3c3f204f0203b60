"""Hidden checks for week 7 (instructor side: never handed out, never shown in feedback).

Each check receives the learner kernel's globals and raises CheckFailed with a message that
says what was expected, without revealing these inputs' source. The checks bring their own
ledger, toy services and saga runner (same interfaces as the notebook's), so nothing the
learner changed in the given cells changes what is checked. No cluster is needed.

The grader executes this source outside ``sys.modules``, where ``dataclasses`` cannot resolve
the module of a class: records here are NamedTuples.
"""

from __future__ import annotations

import tempfile
import uuid
from typing import Any, NamedTuple

from bookstore.domain.errors import FailedPrecondition
from bookstore.grading.checks import CheckFailed, check
from bookstore.platform.database import make_engine
from bookstore.saga import (
    Backoff,
    FailureMeaning,
    SagaDefinition,
    SagaLog,
    SagaOrchestrator,
    SagaOutcome,
    SagaState,
    Step,
)

WEEK = 7
NEEDS_CLUSTER = False


def _learner(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        raise CheckFailed(f"{name} is not defined")
    return ns[name]


# ----------------------------------------------------------------------------- question 1


def _plan(ns: dict[str, Any], completed: list[str], failed: str, meaning: FailureMeaning) -> list[str]:
    compensation_plan = _learner(ns, "compensation_plan")
    given = list(completed)
    got = compensation_plan(given, failed, meaning)
    if given != completed:
        raise CheckFailed(f"compensation_plan changed the list of completed steps it was given, to {given!r}")
    if not isinstance(got, list):
        raise CheckFailed(f"compensation_plan should return a list, got {type(got).__name__}")
    return got


@check("q1", points=1, title="a refused step: only the completed steps, last first")
def q1_refusal(ns: dict[str, Any]) -> None:
    completed = ["quote", "hold", "debit", "notify"]
    got = _plan(ns, completed, "ship", FailureMeaning.NOTHING_DONE)
    if got != ["notify", "debit", "hold", "quote"]:
        raise CheckFailed(
            f"with four completed steps and a refusal at the fifth, the plan should undo the four "
            f"completed ones from the last to the first, and not the refused step; got {got!r}"
        )


@check("q1", points=1, title="a step that possibly did its work is compensated, before the others")
def q1_possibly_done(ns: dict[str, Any]) -> None:
    got = _plan(ns, ["a", "b", "c"], "d", FailureMeaning.POSSIBLY_DONE)
    if got != ["d", "c", "b", "a"]:
        raise CheckFailed(
            "a POSSIBLY_DONE failure after three completed steps should give the failed step first, "
            f"then the completed ones last first; got {got!r}"
        )


@check("q1", points=1, title="a failure at the very first step")
def q1_first_step(ns: dict[str, Any]) -> None:
    refused = _plan(ns, [], "only", FailureMeaning.NOTHING_DONE)
    if refused != []:
        raise CheckFailed(f"a refusal at the first step leaves nothing to undo; got {refused!r}")
    possibly = _plan(ns, [], "only", FailureMeaning.POSSIBLY_DONE)
    if possibly != ["only"]:
        raise CheckFailed(
            f"a POSSIBLY_DONE failure at the first step should undo that step alone; got {possibly!r}"
        )


# ----------------------------------------------------------------------------- question 2


class _Entry(NamedTuple):
    order_id: str
    kind: str
    amount_cents: int


class _Ledger:
    def __init__(self) -> None:
        self.entries: list[_Entry] = []

    def add(self, order_id: str, kind: str, amount_cents: int) -> None:
        self.entries.append(_Entry(order_id, kind, amount_cents))

    def of(self, order_id: str) -> list[_Entry]:
        return [entry for entry in self.entries if entry.order_id == order_id]

    def held_cents(self) -> int:
        return sum({"charge": 1, "refund": -1}.get(e.kind, 0) * e.amount_cents for e in self.entries)


def _charge(ledger: _Ledger, order_id: str, amount_cents: int) -> None:
    kinds = {entry.kind for entry in ledger.of(order_id)}
    if kinds & {"refund", "void"}:
        raise FailedPrecondition(f"order {order_id} was refunded or voided already", field="order_id")
    if "charge" not in kinds:
        ledger.add(order_id, "charge", amount_cents)


def _order_id() -> str:
    return f"order-{uuid.uuid4().hex[:8]}"


def _describe(entries: list[_Entry]) -> str:
    return ", ".join(f"{e.kind} {e.amount_cents}" for e in entries) or "no entries"


@check("q2", points=1, title="a refund gives back what was charged for that order")
def q2_refunds_the_charge(ns: dict[str, Any]) -> None:
    refund = _learner(ns, "refund")
    ledger, mine, other = _Ledger(), _order_id(), _order_id()
    _charge(ledger, mine, 1234)
    _charge(ledger, other, 500)
    refund(ledger, mine)
    if [(e.kind, e.amount_cents) for e in ledger.of(mine)] != [("charge", 1234), ("refund", 1234)]:
        raise CheckFailed(
            "after a charge of 1234 cents, one refund should add one 'refund' entry of 1234 cents; "
            f"the order's entries are: {_describe(ledger.of(mine))}"
        )
    if ledger.of(other) != [_Entry(other, "charge", 500)]:
        raise CheckFailed("refunding one order changed the entries of another order")


@check("q2", points=1, title="a repeated refund adds nothing, and remembers only through the ledger")
def q2_repeat(ns: dict[str, Any]) -> None:
    refund = _learner(ns, "refund")
    shared = _order_id()
    for amount in (700, 4100):  # two ledgers (two providers, or one after a restart), one order id
        ledger = _Ledger()
        _charge(ledger, shared, amount)
        for _ in range(3):
            refund(ledger, shared)
        if ledger.held_cents() != 0 or len(ledger.of(shared)) != 2:
            raise CheckFailed(
                f"a charge of {amount} cents refunded three times should leave exactly one refund of "
                f"{amount}; the order's entries are: {_describe(ledger.of(shared))} (keep what you "
                "know in the ledger: another ledger with the same order id is another account)"
            )


@check("q2", points=1, title="refunding an order that was never charged voids it, once")
def q2_void(ns: dict[str, Any]) -> None:
    refund = _learner(ns, "refund")
    ledger, order_id = _Ledger(), _order_id()
    refund(ledger, order_id)
    refund(ledger, order_id)
    got = [(e.kind, e.amount_cents) for e in ledger.of(order_id)]
    if got != [("void", 0)]:
        raise CheckFailed(
            "refunding an order with no charge, twice, should leave exactly one 'void' entry of 0 "
            f"cents; the order's entries are: {_describe(ledger.of(order_id))}"
        )


@check("q2", points=1, title="a charge arriving after its refund is refused; other orders still pay")
def q2_late_charge(ns: dict[str, Any]) -> None:
    refund = _learner(ns, "refund")
    ledger, voided, fresh = _Ledger(), _order_id(), _order_id()
    refund(ledger, voided)
    try:
        _charge(ledger, voided, 2200)
    except FailedPrecondition:
        pass
    else:
        raise CheckFailed("a charge that arrives after the refund of the same order was accepted")
    _charge(ledger, fresh, 300)
    if ledger.held_cents() != 300:
        raise CheckFailed("after refunding one order, a charge for another order should go through")


# ----------------------------------------------------------------------------- question 3


class _Warehouse:
    def __init__(self, copies: int, journal: list[str]) -> None:
        self.copies, self.journal = copies, journal
        self.held: dict[str, int] = {}

    def reserve(self, order_id: str, quantity: int) -> None:
        self.journal.append("reserve")
        if order_id not in self.held:
            if quantity > self.copies:
                raise FailedPrecondition(f"only {self.copies} copies left", field="quantity")
            self.copies -= quantity
            self.held[order_id] = quantity

    def release(self, order_id: str) -> None:
        self.journal.append("release")
        self.copies += self.held.pop(order_id, 0)


class _Bank:
    def __init__(self, journal: list[str]) -> None:
        self.charged: dict[str, int] = {}
        self.journal = journal

    def charge(self, order_id: str, amount_cents: int) -> None:
        self.journal.append("charge")
        self.charged.setdefault(order_id, amount_cents)

    def refund(self, order_id: str) -> None:
        self.journal.append("refund")
        self.charged.pop(order_id, None)


class _Courier:
    def __init__(self, journal: list[str], mode: str = "ok") -> None:
        self.booked: set[str] = set()
        self.journal, self.mode = journal, mode

    def book(self, order_id: str) -> None:
        self.journal.append("book")
        if self.mode == "refuses":
            raise FailedPrecondition("no courier serves this address", field="address")
        self.booked.add(order_id)
        if self.mode == "lost":
            raise TimeoutError("the courier's answer was lost")

    def cancel(self, order_id: str) -> None:
        self.journal.append("cancel")
        self.booked.discard(order_id)


class _World(NamedTuple):
    journal: list[str]
    warehouse: _Warehouse
    bank: _Bank
    courier: _Courier
    outcome: SagaOutcome


def _definition(ns: dict[str, Any], warehouse: _Warehouse, bank: _Bank, courier: _Courier) -> SagaDefinition:
    definition = _learner(ns, "checkout_saga")(warehouse, bank, courier)
    if not isinstance(definition, SagaDefinition):
        raise CheckFailed(f"checkout_saga should return a SagaDefinition, got {type(definition).__name__}")
    return definition


def _run_saga(definition: SagaDefinition, payload: dict[str, Any]) -> SagaOutcome:
    """One saga on the real orchestrator, its log in a throwaway SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/saga.db")
        try:
            orchestrator = SagaOrchestrator(
                SagaLog(engine), [definition], backoff=Backoff(initial_s=0.001, max_attempts=3)
            )
            return orchestrator.run(definition.name, payload["order_id"], payload)
        finally:
            engine.dispose()


def _checkout(ns: dict[str, Any], *, copies: int, quantity: int, amount_cents: int, courier: str) -> _World:
    journal: list[str] = []
    world = (_Warehouse(copies, journal), _Bank(journal), _Courier(journal, courier))
    definition = _definition(ns, *world)
    payload = {"order_id": _order_id(), "quantity": quantity, "amount_cents": amount_cents}
    outcome = _run_saga(definition, payload)
    return _World(journal, *world, outcome)


def _ran(world: _World) -> str:
    return f"state {world.outcome.state.value}, calls {world.journal}, error {world.outcome.error!r}"


@check("q3", points=1, title="the saga is reserve, charge, ship, in that order, each with a compensation")
def q3_shape(ns: dict[str, Any]) -> None:
    journal: list[str] = []
    definition = _definition(ns, _Warehouse(3, journal), _Bank(journal), _Courier(journal))
    names = [step.name for step in definition.steps]
    if definition.name != "checkout" or names != ["reserve", "charge", "ship"]:
        raise CheckFailed(
            f"expected a saga named 'checkout' with steps ['reserve', 'charge', 'ship'], "
            f"got {definition.name!r} with {names!r}"
        )
    missing = [step.name for step in definition.steps if step.compensation is None]
    if missing:
        raise CheckFailed(f"these steps have no compensation: {missing}")
    if journal:
        raise CheckFailed(f"building the saga should call no service yet; it called {journal}")


@check("q3", points=1, title="the happy path reserves, charges and books with the payload's values")
def q3_happy_path(ns: dict[str, Any]) -> None:
    world = _checkout(ns, copies=9, quantity=4, amount_cents=5120, courier="ok")
    if world.outcome.state is not SagaState.SUCCEEDED or world.journal != ["reserve", "charge", "book"]:
        raise CheckFailed(f"with every service working the saga should succeed; got {_ran(world)}")
    if (
        world.warehouse.copies != 5
        or list(world.bank.charged.values()) != [5120]
        or len(world.courier.booked) != 1
    ):
        raise CheckFailed(
            "after reserving 4 of 9 copies and charging 5120 cents, expected 5 copies left, one charge "
            f"of 5120 and one pickup; got {world.warehouse.copies} copies, charges "
            f"{list(world.bank.charged.values())}, {len(world.courier.booked)} pickup(s)"
        )


@check("q3", points=1, title="a refused shipment refunds, then releases")
def q3_refused_shipment(ns: dict[str, Any]) -> None:
    world = _checkout(ns, copies=6, quantity=6, amount_cents=777, courier="refuses")
    expected = ["reserve", "charge", "book", "refund", "release"]
    if world.outcome.state is not SagaState.COMPENSATED or world.journal != expected:
        raise CheckFailed(f"when the courier refuses, the calls should be {expected}; got {_ran(world)}")
    if world.warehouse.copies != 6 or world.bank.charged:
        raise CheckFailed("after the compensations, every copy should be back and nothing charged")


@check("q3", points=1, title="a shipment whose answer was lost is cancelled too")
def q3_lost_answer(ns: dict[str, Any]) -> None:
    world = _checkout(ns, copies=2, quantity=1, amount_cents=1999, courier="lost")
    expected = ["reserve", "charge", "book", "cancel", "refund", "release"]
    if world.outcome.state is not SagaState.COMPENSATED or world.journal != expected:
        raise CheckFailed(
            f"when the courier may have booked the pickup (its answer was lost), the calls should be "
            f"{expected}; got {_ran(world)}"
        )
    if world.courier.booked or world.bank.charged or world.warehouse.copies != 2:
        raise CheckFailed("after the compensations, no pickup, no charge and every copy back were expected")


# ----------------------------------------------------------------------------- question 4

_PLAN_STEPS = ("reserve", "charge", "dispatch", "notify")
_FORWARD_ATTEMPTS = 5


class _Shop:
    """Question 4's services: dispatch and notify cannot be undone; notify fails ``mail_down`` times."""

    def __init__(self, *, copies: int = 5, card: str = "ok", served: bool = True, mail_down: int = 0) -> None:
        self.copies, self.card, self.served, self.mail_down = copies, card, served, mail_down
        self.held: dict[str, int] = {}
        self.charged: dict[str, int] = {}
        self.parcels: list[str] = []
        self.emails: list[str] = []

    def reserve(self, p: dict[str, Any]) -> None:
        if p["order_id"] not in self.held:
            if p["quantity"] > self.copies:
                raise FailedPrecondition(f"only {self.copies} copies left", field="quantity")
            self.copies -= p["quantity"]
            self.held[p["order_id"]] = p["quantity"]

    def release(self, p: dict[str, Any]) -> None:
        self.copies += self.held.pop(p["order_id"], 0)

    def charge(self, p: dict[str, Any]) -> None:
        if self.card == "declined":
            raise FailedPrecondition("card declined", field="card")
        self.charged.setdefault(p["order_id"], p["amount_cents"])

    def refund(self, p: dict[str, Any]) -> None:
        self.charged.pop(p["order_id"], None)

    def dispatch(self, p: dict[str, Any]) -> None:
        if not self.served:
            raise FailedPrecondition("no carrier serves this address", field="address")
        if p["order_id"] not in self.parcels:
            self.parcels.append(p["order_id"])

    def notify(self, p: dict[str, Any]) -> None:
        if self.mail_down > 0:
            self.mail_down -= 1
            raise ConnectionError("the mail server is down")
        self.emails.append(p["order_id"])

    def step(self, name: str) -> Step:
        action = getattr(self, name)
        undo = {"reserve": self.release, "charge": self.refund}.get(name)
        return Step(
            name,
            lambda ctx: action(dict(ctx.payload)),
            (lambda ctx: undo(dict(ctx.payload))) if undo is not None else None,
        )

    def left_behind(self, order_id: str) -> list[str]:
        found = [f"a charge of {self.charged[order_id]} cents"] if order_id in self.charged else []
        found += [f"{self.held[order_id]} copies held"] if order_id in self.held else []
        found += ["a parcel sent"] * self.parcels.count(order_id)
        return found + ["an e-mail sent"] * self.emails.count(order_id)


def _decision(ns: dict[str, Any]) -> tuple[list[str], str]:
    plan, pivot = _learner(ns, "CHECKOUT_PLAN"), _learner(ns, "PIVOT")
    if not isinstance(plan, list | tuple) or sorted(map(str, plan)) != sorted(_PLAN_STEPS):
        raise CheckFailed(f"CHECKOUT_PLAN should list each of {list(_PLAN_STEPS)} once, got {plan!r}")
    if pivot not in plan:
        raise CheckFailed(f"PIVOT should name one of the plan's steps, got {pivot!r}")
    return [str(name) for name in plan], str(pivot)


def _run_plan(ns: dict[str, Any], shop: _Shop, payload: dict[str, Any]) -> str:
    """The notebook's run_with_pivot: a saga up to the pivot, then forward retries, never undone."""
    plan, pivot = _decision(ns)
    cut = plan.index(pivot) + 1
    definition = SagaDefinition("checkout", [shop.step(name) for name in plan[:cut]])
    outcome = _run_saga(definition, payload)
    if outcome.state is not SagaState.SUCCEEDED:
        return "rejected"
    for name in plan[cut:]:
        for _ in range(_FORWARD_ATTEMPTS):
            try:
                getattr(shop, name)(payload)
                break
            except Exception:
                continue
        else:
            return "stuck"
    return "delivered"


def _order(quantity: int, amount_cents: int) -> dict[str, Any]:
    return {"order_id": _order_id(), "quantity": quantity, "amount_cents": amount_cents}


def _delivery_problem(ns: dict[str, Any], shop: _Shop, quantity: int, amount_cents: int) -> str:
    """Run an order that can be delivered: '' when it was charged, sent and e-mailed exactly once."""
    order = _order(quantity, amount_cents)
    ended, oid = _run_plan(ns, shop, order), order["order_id"]
    once = shop.charged == {oid: amount_cents} and shop.parcels == [oid] and shop.emails == [oid]
    return "" if ended == "delivered" and once else f"it ended {ended!r} holding {shop.left_behind(oid)}"


@check("q4", points=1, title="the plan runs each step once and delivers an order nothing stops")
def q4_delivers(ns: dict[str, Any]) -> None:
    problem = _delivery_problem(ns, _Shop(copies=3), 3, 4321)
    if problem:
        raise CheckFailed(
            "with every service working the order should be delivered, charged, sent and e-mailed once; "
            + problem
        )


@check("q4", points=1, title="a refusal at any step leaves no charge, no held copy, no parcel and no e-mail")
def q4_nothing_survives(ns: dict[str, Any]) -> None:
    survivors: list[str] = []
    for trouble in ({"copies": 2}, {"card": "declined"}, {"served": False}):
        shop, order = _Shop(**trouble), _order(3, 2750)
        ended = _run_plan(ns, shop, order)
        left = shop.left_behind(order["order_id"])
        if ended != "rejected" or left:
            survivors.append(f"{trouble}: ended {ended!r}, leaving {left or 'nothing'}")
    if survivors:
        raise CheckFailed(
            "an order that fails at one of its steps should be rejected with nothing left behind; "
            + "; ".join(survivors)
        )


@check("q4", points=1, title="a step that fails only for a while does not undo a good order")
def q4_retried_forward(ns: dict[str, Any]) -> None:
    problem = _delivery_problem(ns, _Shop(mail_down=3), 1, 999)
    if problem:
        raise CheckFailed(
            "with the mail server down for three attempts the order should still be delivered, charged, sent "
            "and e-mailed once; " + problem
        )
