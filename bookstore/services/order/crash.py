"""Fault injection for tests: the order service kills itself at one chosen saga step boundary.

A saga log earns its keep only if the orchestrator can die *anywhere* and a restarted one
still brings every order to APPROVED or REJECTED with stock and money in agreement. Killing
the process from outside at a random instant rarely hits the interesting moments (between a
call that succeeded and the log line saying so, say). So the order service reads
``BOOKSTORE_CRASH_AT`` at start-up, and when its saga reaches that point it sends itself
SIGKILL: no ``finally``, no flush, no goodbye, exactly like a power cut.

The value is ``<moment>:<step>``, for instance ``after:reserve``. The moments, in the order a
step meets them:

=============  ==============================================================================
``before``     STARTED is logged, the call is not made yet
``returned``   the call returned successfully, the log does not know yet (the nastiest one:
               the other service did the work; the restarted saga must repeat the call with the
               same idempotency key and be answered, not served twice)
``after``      SUCCEEDED is logged. The log commits it together with the next step's STARTED
               (or, for the last step, with the saga's end and the order's approval), so
               ``after:reserve`` leaves the same log as ``before:pay``, and ``after:pay``
               finds the order APPROVED: recovery has nothing left to do
``failed``     FAILED is logged, no compensation has run
``compensating``  COMPENSATING is logged, the undo call is not made yet
``compensated``   COMPENSATED is logged, the next compensation has not started
=============  ==============================================================================

Never set it outside tests: the process dies the first time any order reaches that point.
Restart the service without it (``cluster.restart("order", env={"BOOKSTORE_CRASH_AT": ""})``)
and watch recovery finish the order.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace

from bookstore.saga import Hook, SagaEvent, Step, StepContext, StepEventKind

log = logging.getLogger(__name__)

# Moments the orchestrator reports to hooks, once the event is committed to the saga log.
_LOGGED_MOMENTS = {
    "before": StepEventKind.STARTED,
    "after": StepEventKind.SUCCEEDED,
    "failed": StepEventKind.FAILED,
    "compensating": StepEventKind.COMPENSATING,
    "compensated": StepEventKind.COMPENSATED,
}
# The one moment no log event marks: the action is done, its SUCCEEDED not yet written.
RETURNED = "returned"
MOMENTS = (*_LOGGED_MOMENTS, RETURNED)

Kill = Callable[[], None]


def sigkill_self() -> None:
    """End this process as a crash would: SIGKILL cannot be caught, so nothing runs after it."""
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class CrashPoint:
    """Where to crash: a moment (see the module docstring) of one step."""

    moment: str
    step: str

    @classmethod
    def parse(cls, spec: str) -> CrashPoint | None:
        """``"after:reserve"`` -> CrashPoint("after", "reserve"); an empty spec is None (no crash)."""
        spec = spec.strip()
        if not spec:
            return None
        moment, sep, step = spec.partition(":")
        if not sep or not step or moment not in MOMENTS:
            raise ValueError(
                f"BOOKSTORE_CRASH_AT must be <moment>:<step> with a moment among {', '.join(MOMENTS)}; "
                f"got {spec!r}"
            )
        return cls(moment, step)

    def __str__(self) -> str:
        return f"{self.moment}:{self.step}"

    def hook(self, kill: Kill = sigkill_self) -> Hook:
        """An orchestrator hook that kills at a logged moment (and does nothing for ``returned``)."""
        kind = _LOGGED_MOMENTS.get(self.moment)

        def crash_when_reached(event: SagaEvent) -> None:
            if kind is not None and event.kind is kind and event.step == self.step:
                self._die(kill, event.saga_id)

        return crash_when_reached

    def wrap(self, step: Step, kill: Kill = sigkill_self) -> Step:
        """``step`` itself, or, for ``returned:<step>``, a copy whose action kills once the call returned."""
        if self.moment != RETURNED or step.name != self.step:
            return step
        action = step.action

        def act_then_crash(context: StepContext) -> None:
            action(context)
            self._die(kill, context.saga_id)

        return replace(step, action=act_then_crash)

    def _die(self, kill: Kill, saga_id: str) -> None:
        # Logging flushes each record, so this line is in the service log before the end.
        log.warning("fault injection: BOOKSTORE_CRASH_AT=%s reached by saga %s; crashing now", self, saga_id)
        kill()
