"""Resilience (week 8): keep one failing dependency from taking its callers down with it.

**Why a circuit breaker.** When payment is down, every order call still waits for its
deadline before failing. Each waiting call holds a thread; with enough of them the order
service stops answering too, then the gateway, and one outage has become everyone's outage: a
*cascading failure*. Retrying makes it worse, because the struggling service now gets more
traffic exactly when it can handle less. A circuit breaker watches the outcomes of calls to
one dependency and, once enough of them fail, stops making them for a while: callers fail
fast (microseconds instead of a deadline), can answer with a fallback, and the dependency
gets quiet time to recover.

**The three states.**

* ``CLOSED``: calls pass. The breaker keeps the outcomes of the last ``window_size`` calls
  (a sliding window) and judges it after every outcome, success or failure: it trips to OPEN
  when the share of failures reaches ``failure_rate_threshold``, once the window holds at
  least ``minimum_calls`` outcomes; or, if ``consecutive_failures`` is set, after that many
  failures in a row.
* ``OPEN``: every call is refused at once with ``CircuitOpenError``, which says how long until
  the breaker tries again (``retry_after_s``). The function is not called at all.
* ``HALF_OPEN``: after ``open_timeout_s`` the breaker lets up to ``half_open_max_calls``
  trial calls through at once; the others are still refused. That many successes close it
  (with an empty window); a single failure opens it again for another ``open_timeout_s``.
  Trials that give no outcome for ``half_open_max_wait_s`` are given up on: the breaker opens
  again, and their late results are ignored, so one hung trial cannot hold it half-open.

**What counts as a failure.** Only what says the dependency is unhealthy: with gRPC,
UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED (``grpc_failure_classifier``).
NOT_FOUND or INVALID_ARGUMENT is a healthy server answering a bad request; counting it would
let one client's typos cut everybody off. Such errors pass through and count as successes.
INTERNAL and RESOURCE_EXHAUSTED deserve the same care: they count by default, as the server's
trouble, but one poison request or one client's quota raises them too; where a service means
them per request, leave them out of ``failure_codes``.
A failure the server passes on from its own dependency counts as a success too, which its
trailing metadata says: ``bookstore-circuit`` (*its* breaker in front of *its* dependency
refused the call) or ``bookstore-dependency`` (that dependency failed, and the server cleaned
up and answered). The gateway keeps taking order requests while payment fails, and listing
orders, which never needed payment, keeps working.

**The race the generation counter settles.** A call admitted while CLOSED may take seconds.
If the breaker opened and half-opened in the meantime, that call's late failure says nothing
about the trial calls; counting it would re-open a breaker whose dependency has recovered.
Every transition starts a new generation, and an outcome from an older generation is ignored.

**When not to use one.**

* Calls that are rare: with a handful of calls a minute the window never fills in time to
  help; a deadline and a clear error serve better.
* As a substitute for deadlines: a breaker learns from calls that time out; it does not time
  them out. Every protected call still needs its own deadline.
* Around business errors (a declined card, an unknown book): they are answers, not outages.
* Around in-process code: there is no remote party to give room to recover.
* Retrying a ``CircuitOpenError``: the breaker refused *because* the dependency is failing;
  wait ``retry_after_s`` or use a fallback.

One breaker guards one dependency in one process; each calling process learns on its own.

**Where the pieces are.** ``breaker`` is the state machine, free of gRPC and tracing, with its
two steps (``admit()`` gives a ``Ticket``, settled with the call's outcome); the words it shares
with the saga, the servicers and the gateway (``CircuitOpenError``, ``State``, the metadata keys,
the gRPC classifier) live in ``bookstore.rpc.failures``; ``trace_events`` puts its decisions on
the current span; ``interceptor`` puts one breaker
per service (or per method) in front of a gRPC channel, so every stub on it is protected:
``protected_channel(target, "payment", BreakerRegistry.from_settings(settings))``. ``timeline``
records and draws what breakers and their callers did; ``drill`` replays a payment outage
against a real breaker in simulated time, to weigh settings (week 8's design task).
"""

from bookstore.resilience.breaker import (
    BreakerSettings,
    BreakerSnapshot,
    CircuitBreaker,
    DecisionListener,
    StateListener,
    Ticket,
    Totals,
    WindowCounts,
    add_decision_listener,
    remove_decision_listener,
)
from bookstore.resilience.interceptor import (
    BreakerRegistry,
    CircuitBreakerInterceptor,
    CircuitOpenRpcError,
    breaker_settings_from,
    log_state_change,
    protected_channel,
)
from bookstore.resilience.trace_events import record_on_current_span
from bookstore.rpc.failures import (
    CIRCUIT_METADATA_KEY,
    DEFAULT_FAILURE_CODES,
    DEPENDENCY_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    CircuitOpenError,
    FailureClassifier,
    GrpcFailureClassifier,
    State,
    grpc_failure_classifier,
    names_a_circuit,
    passed_on,
)

# Every breaker's decisions go on the current span (week 10); the breaker itself has no tracing.
add_decision_listener(record_on_current_span)

__all__ = [
    "CIRCUIT_METADATA_KEY",
    "DEFAULT_FAILURE_CODES",
    "DEPENDENCY_METADATA_KEY",
    "RETRY_AFTER_METADATA_KEY",
    "BreakerRegistry",
    "BreakerSettings",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitBreakerInterceptor",
    "CircuitOpenError",
    "CircuitOpenRpcError",
    "DecisionListener",
    "FailureClassifier",
    "GrpcFailureClassifier",
    "State",
    "StateListener",
    "Ticket",
    "Totals",
    "WindowCounts",
    "add_decision_listener",
    "breaker_settings_from",
    "grpc_failure_classifier",
    "log_state_change",
    "names_a_circuit",
    "passed_on",
    "protected_channel",
    "record_on_current_span",
    "remove_decision_listener",
]
