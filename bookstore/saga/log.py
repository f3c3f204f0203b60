"""The saga log: the orchestrator's memory, kept in the database of the service that runs it.

Every move of a saga is written here, and committed, *before* the next move is made: the
saga's creation before its first step, a step's STARTED before its call, its SUCCEEDED or
FAILED before the next step or the first compensation. Events that follow each other with
no call in between may share one transaction (``append``): a step's SUCCEEDED and the next
step's STARTED, the last SUCCEEDED and the saga's end, the creation and the first STARTED.
Each is still committed before the call that follows it. Reads take no write lock.
Whatever instant the process dies at, the log therefore tells a restarted orchestrator
where it was, give or take the one call in progress, and that call is safe to repeat
because it carries the same idempotency key.

Two tables, created with ``bookstore.platform.database.initialize`` from their own metadata
so they can sit in the order service's database next to its ``orders``:

* ``saga_instances``: one row per saga: its definition, payload (JSON), state, the step that
  failed and the original error, and who runs it.
* ``saga_step_events``: one row per step event, in the order they happened.

A saga is RUNNING, then either SUCCEEDED, or COMPENSATING (a step failed; the row keeps the
first error, never a later compensation error) and finally COMPENSATED: failed and undone.

Ownership: when several replicas share one database, two of them must not drive the same
saga. Each row names its ``owner`` and holds a lease that every write renews; a write by
anyone but the owner is refused (``SagaOwnershipLost``), and another orchestrator may
``claim`` a saga only once its lease has run out. An owner that restarts under the same name
(``order-0``) takes its sagas back at once. Leases compare wall-clock times of processes on
one machine or with synchronised clocks; the lease must outlast the longest gap between two
writes (a step's timeout, a compensation's backoff).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CursorResult,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from bookstore.platform.database import initialize, read_session_factory, session_factory

MAX_SAGA_ID_CHARS = 100
MAX_NAME_CHARS = 100
MAX_ERROR_CHARS = 1000
DEFAULT_OWNER = "orchestrator"
DEFAULT_LEASE_S = 60.0


class SagaState(enum.Enum):
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    SUCCEEDED = "SUCCEEDED"
    COMPENSATED = "COMPENSATED"

    @property
    def finished(self) -> bool:
        return self in (SagaState.SUCCEEDED, SagaState.COMPENSATED)


IN_FLIGHT_STATES = (SagaState.RUNNING.value, SagaState.COMPENSATING.value)


class StepEventKind(enum.Enum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


class SagaNotFound(LookupError):
    """The log holds no saga with that id."""


class SagaOwnershipLost(RuntimeError):
    """Another orchestrator owns the saga now (our lease ran out), or it is already finished.

    The writer must stop driving the saga: its new owner continues from the log.
    """


class SagaBase(DeclarativeBase):
    pass


class SagaInstanceRow(SagaBase):
    __tablename__ = "saga_instances"
    __table_args__ = (Index("ix_saga_instances_state", "state"),)

    saga_id: Mapped[str] = mapped_column(String(MAX_SAGA_ID_CHARS), primary_key=True)
    definition: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    deadline_s: Mapped[float] = mapped_column(Double)
    failed_step: Mapped[str | None] = mapped_column(String(MAX_NAME_CHARS), nullable=True)
    error: Mapped[str] = mapped_column(String(MAX_ERROR_CHARS), default="")
    owner: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    lease_until_ns: Mapped[int] = mapped_column(BigInteger)
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    updated_at_ns: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[list[SagaStepEventRow]] = relationship(
        order_by="SagaStepEventRow.event_id", cascade="all, delete-orphan", lazy="selectin"
    )


class SagaStepEventRow(SagaBase):
    __tablename__ = "saga_step_events"

    # SQLite auto-increments only an INTEGER primary key; elsewhere 64 bits leave room.
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    saga_id: Mapped[str] = mapped_column(
        String(MAX_SAGA_ID_CHARS), ForeignKey("saga_instances.saga_id", ondelete="CASCADE"), index=True
    )
    step: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    kind: Mapped[str] = mapped_column(String(24))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    possibly_done: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    error: Mapped[str] = mapped_column(String(MAX_ERROR_CHARS), default="")
    at_ns: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class StepRecord:
    """One logged step event. ``possibly_done`` is set on FAILED events only."""

    step: str
    kind: StepEventKind
    attempt: int
    possibly_done: bool | None
    error: str
    at_ns: int


@dataclass(frozen=True)
class NewEvent:
    """A step event to append (``SagaLog.append``); ``possibly_done`` is for FAILED events."""

    step: str
    kind: StepEventKind
    error: str = ""
    possibly_done: bool | None = None
    attempt: int = 1


@dataclass(frozen=True)
class SagaRecord:
    saga_id: str
    definition: str
    payload: Mapping[str, Any]
    state: SagaState
    deadline_s: float
    failed_step: str | None
    error: str
    owner: str
    lease_until_ns: int
    created_at_ns: int
    updated_at_ns: int
    events: tuple[StepRecord, ...]

    @property
    def finished(self) -> bool:
        return self.state.finished


def _to_record(row: SagaInstanceRow) -> SagaRecord:
    return SagaRecord(
        saga_id=row.saga_id,
        definition=row.definition,
        payload=json.loads(row.payload),
        state=SagaState(row.state),
        deadline_s=row.deadline_s,
        failed_step=row.failed_step,
        error=row.error,
        owner=row.owner,
        lease_until_ns=row.lease_until_ns,
        created_at_ns=row.created_at_ns,
        updated_at_ns=row.updated_at_ns,
        events=tuple(
            StepRecord(
                step=event.step,
                kind=StepEventKind(event.kind),
                attempt=event.attempt,
                possibly_done=event.possibly_done,
                error=event.error,
                at_ns=event.at_ns,
            )
            for event in row.events
        ),
    )


def encode_payload(payload: Mapping[str, Any]) -> str:
    """The payload as stored; raises TypeError when it is not a JSON object of plain values."""
    if not isinstance(payload, Mapping):
        raise TypeError(f"a saga payload must be a mapping, got {type(payload).__name__}")
    try:
        return json.dumps(dict(payload), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"a saga payload must be JSON-serialisable: {error}") from None


class SagaLog:
    """The sagas of one database, seen by one owner; every method is one short transaction.

    Writes take SQLite's write lock at once (``BEGIN IMMEDIATE``); reads (``get``, ``find``,
    ``in_flight``) run in deferred transactions that never wait for the writers.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str = DEFAULT_OWNER,
        lease_s: float = DEFAULT_LEASE_S,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not owner or len(owner) > MAX_NAME_CHARS:
            raise ValueError(f"owner must be 1 to {MAX_NAME_CHARS} characters, got {owner!r}")
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        initialize(engine, SagaBase.metadata)
        self._sessions = session_factory(engine)
        self._reads = read_session_factory(engine)
        self.owner = owner
        self._lease_ns = int(lease_s * 1e9)
        self._clock_ns = clock_ns

    def create(
        self,
        saga_id: str,
        definition: str,
        payload: Mapping[str, Any],
        *,
        deadline_s: float,
        first_event: NewEvent | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> bool:
        """Store a new RUNNING saga owned by this log's owner, with ``first_event`` if given.

        Returns False, writing nothing, when a saga with this id exists already: a replay,
        whose fate the caller reads (or resumes) instead of starting the work again.
        ``also`` writes the caller's own rows in the same transaction; whatever it raises
        rolls the creation back and is raised here.
        """
        if first_event is not None and first_event.kind is StepEventKind.FAILED:
            raise ValueError("a saga cannot be created with a FAILED event")
        if not saga_id or len(saga_id) > MAX_SAGA_ID_CHARS:
            raise ValueError(f"saga_id must be 1 to {MAX_SAGA_ID_CHARS} characters, got {saga_id!r}")
        encoded = encode_payload(payload)
        now = self._clock_ns()
        try:
            with self._sessions.begin() as session:
                if session.get(SagaInstanceRow, saga_id) is not None:
                    return False
                session.add(
                    SagaInstanceRow(
                        saga_id=saga_id,
                        definition=definition,
                        payload=encoded,
                        state=SagaState.RUNNING.value,
                        deadline_s=deadline_s,
                        failed_step=None,
                        error="",
                        owner=self.owner,
                        lease_until_ns=now + self._lease_ns,
                        created_at_ns=now,
                        updated_at_ns=now,
                    )
                )
                if first_event is not None:
                    session.flush()  # the saga row first: the event's foreign key points at it
                    session.add(self._event_row(saga_id, first_event, now))
                if also is not None:
                    also(session)
        except IntegrityError:
            if self.find(saga_id) is None:
                raise  # not our saga row: a unique key of the caller's own rows (``also``)
            return False  # a concurrent create with the same id won the race
        return True

    def record(
        self,
        saga_id: str,
        step: str,
        kind: StepEventKind,
        *,
        error: str = "",
        possibly_done: bool | None = None,
        attempt: int = 1,
    ) -> None:
        """Append one step event, renewing the lease, and commit (``append`` of one event)."""
        event = NewEvent(step, kind, error=error, possibly_done=possibly_done, attempt=attempt)
        self.append(saga_id, [event])

    def finish(
        self, saga_id: str, state: SagaState, *, also: Callable[[Session], None] | None = None
    ) -> None:
        """Mark the saga SUCCEEDED or COMPENSATED; it leaves ``in_flight`` for good."""
        self.append(saga_id, [], finish=state, also=also)

    def append(
        self,
        saga_id: str,
        events: Sequence[NewEvent],
        *,
        finish: SagaState | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> None:
        """Append ``events`` in order and, with ``finish``, end the saga: one transaction.

        ``also`` writes the caller's own rows in that transaction, after the fenced update:
        they commit only if we still own the saga.

        Renews the lease once (refusing with ``SagaOwnershipLost`` if we no longer own the
        unfinished saga). A FAILED event moves the saga to COMPENSATING, naming the step and
        the error, unless an earlier failure is already recorded: the first error is the one
        the saga reports. ``finish`` takes SUCCEEDED or COMPENSATED.
        """
        if finish is not None and not finish.finished:
            raise ValueError(f"finish takes SUCCEEDED or COMPENSATED, not {finish.value}")
        changes: dict[str, Any] = {}
        failure = next((event for event in events if event.kind is StepEventKind.FAILED), None)
        if failure is not None:
            changes = {
                "state": SagaState.COMPENSATING.value,
                "failed_step": func.coalesce(SagaInstanceRow.failed_step, failure.step),
                "error": case(
                    (SagaInstanceRow.error == "", failure.error[:MAX_ERROR_CHARS]),
                    else_=SagaInstanceRow.error,
                ),
            }
        if finish is not None:
            changes["state"] = finish.value
        with self._sessions.begin() as session:
            now = self._fenced_update(session, saga_id, changes)
            session.add_all([self._event_row(saga_id, event, now) for event in events])
            if also is not None:
                also(session)

    @staticmethod
    def _event_row(saga_id: str, event: NewEvent, now: int) -> SagaStepEventRow:
        return SagaStepEventRow(
            saga_id=saga_id,
            step=event.step,
            kind=event.kind.value,
            attempt=event.attempt,
            possibly_done=event.possibly_done,
            error=event.error[:MAX_ERROR_CHARS],
            at_ns=now,
        )

    def claim(self, saga_id: str) -> bool:
        """Take over an unfinished saga whose owner is us or whose lease has run out."""
        now = self._clock_ns()
        with self._sessions.begin() as session:
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(SagaInstanceRow)
                    .where(
                        SagaInstanceRow.saga_id == saga_id,
                        SagaInstanceRow.state.in_(IN_FLIGHT_STATES),
                        or_(SagaInstanceRow.owner == self.owner, SagaInstanceRow.lease_until_ns < now),
                    )
                    .values(owner=self.owner, lease_until_ns=now + self._lease_ns, updated_at_ns=now)
                    .execution_options(synchronize_session=False)
                ),
            )
            return result.rowcount == 1

    def get(self, saga_id: str) -> SagaRecord:
        with self._reads() as session:
            row = session.get(SagaInstanceRow, saga_id)
            if row is None:
                raise SagaNotFound(f"no saga {saga_id}")
            return _to_record(row)

    def find(self, saga_id: str) -> SagaRecord | None:
        try:
            return self.get(saga_id)
        except SagaNotFound:
            return None

    def in_flight(self) -> list[SagaRecord]:
        """Sagas not finished (RUNNING or COMPENSATING), oldest first, whoever owns them."""
        with self._reads() as session:
            rows = session.execute(
                select(SagaInstanceRow)
                .where(SagaInstanceRow.state.in_(IN_FLIGHT_STATES))
                .order_by(SagaInstanceRow.created_at_ns, SagaInstanceRow.saga_id)
            ).scalars()
            return [_to_record(row) for row in rows]

    def _fenced_update(self, session: Session, saga_id: str, changes: Mapping[str, Any]) -> int:
        """Renew our lease (and apply ``changes``) if we still own the unfinished saga.

        The UPDATE also locks the row, so events of one saga are appended one at a time.
        """
        now = self._clock_ns()
        result = cast(
            CursorResult[Any],
            session.execute(
                update(SagaInstanceRow)
                .where(
                    SagaInstanceRow.saga_id == saga_id,
                    SagaInstanceRow.owner == self.owner,
                    SagaInstanceRow.state.in_(IN_FLIGHT_STATES),
                )
                .values(lease_until_ns=now + self._lease_ns, updated_at_ns=now, **changes)
                .execution_options(synchronize_session=False)
            ),
        )
        if result.rowcount == 1:
            return now
        row = session.get(SagaInstanceRow, saga_id)
        if row is None:
            raise SagaNotFound(f"no saga {saga_id}")
        if SagaState(row.state).finished:
            raise SagaOwnershipLost(f"saga {saga_id} is already {row.state}")
        raise SagaOwnershipLost(f"saga {saga_id} is now owned by {row.owner}, not {self.owner}")
