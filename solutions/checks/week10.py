"""Hidden checks for week 10 (instructor side: never handed out, never shown in feedback).

Each check receives the learner kernel's globals and raises CheckFailed with a message that
says which behaviour was expected, without revealing these inputs' source.
No cluster is needed: the questions are the pure cores of trace context propagation,
Prometheus's histogram_quantile and a trace's self time per service, a design task
(question 4) whose consequences ``bookstore.observability.audit`` measures under a load, and
the hot spot of a profile (question 5) that this module records itself, of a process it
starts with a hot function named at random, so that no answer can be known in advance.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from bookstore.grading.checks import CheckFailed, check
from bookstore.observability.audit import Audit, audit_instrumentation, checkout_load
from bookstore.observability.profiling import (
    Profile,
    ProfilerUnavailable,
    parse_collapsed,
    profile_call,
    record_pid,
    to_collapsed,
)

WEEK = 10
NEEDS_CLUSTER = False


def _learner(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        raise CheckFailed(f"{name} is not defined")
    return ns[name]


# ----------------------------------------------------------------------------- question 1

# Every row agrees with the W3C Trace Context spec (version 00) and with what OpenTelemetry's
# TraceContextTextMapPropagator (opentelemetry-api 1.45) extracts: a span context with these
# ids and sampled flag, or none. Left out on purpose: whitespace around the value (the spec
# allows none, the propagator accepts leading or trailing spaces and tabs, and a trailing
# newline), and versions other than 00 and ff (both the spec and the propagator read a later
# version's first four fields, even with more fields after them; the question leaves it open).
_T = "4bf92f3577b34da6a3ce929d0e0e4736"
_S = "00f067aa0ba902b7"

VALID: list[tuple[str, tuple[str, str, bool]]] = [
    (f"00-{_T}-{_S}-01", (_T, _S, True)),
    (f"00-{_T}-{_S}-00", (_T, _S, False)),
    (f"00-{_T}-{_S}-03", (_T, _S, True)),
    (f"00-{_T}-{_S}-02", (_T, _S, False)),
    (f"00-{_T}-{_S}-09", (_T, _S, True)),
    (f"00-{_T}-{_S}-80", (_T, _S, False)),
    (f"00-{'0' * 31}1-{_S}-01", ("0" * 31 + "1", _S, True)),
    (f"00-{_T}-{'0' * 15}1-00", (_T, "0" * 15 + "1", False)),
    (
        "00-12345678901234567890123456789012-1234567890123456-01",
        ("12345678901234567890123456789012", "1234567890123456", True),
    ),
    (
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True),
    ),
]

WRONG_SHAPE: list[str] = [
    "",
    "00",
    f"00-{_T}-{_S}",
    f"{_T}-{_S}-01",
    f"00-{_T}-{_S}-01-",
    f"00-{_T}-{_S}-01-what-ever",
    f"00-{_T[:-1]}-{_S}-01",
    f"00-{_T}a-{_S}-01",
    f"00-{_T}-{_S[:-1]}-01",
    f"00-{_T}-{_S}0-01",
    f"00-{_T}-{_S}-1",
    f"00-{_T}-{_S}-001",
    f"0-{_T}-{_S}-01",
    f"000-{_T}-{_S}-01",
    f"00--{_T}-{_S}-01",
    f"00_{_T}_{_S}_01",
    f"00-{_T}{_S}-01",
]

NOT_LOWERCASE_HEX: list[str] = [
    f"00-{_T.upper()}-{_S}-01",
    f"00-{_T}-{_S.upper()}-01",
    f"00-{_T}-{_S}-0A",
    f"0A-{_T}-{_S}-01",
    f"0g-{_T}-{_S}-01",
    f"00-{_T[:-1]}g-{_S}-01",
    f"00-0x{_T[2:]}-{_S}-01",
    f"00-{_T[:4]}_{_T[5:]}-{_S}-01",
    f"00-{_T}-+{_S[1:]}-01",
    f"00-{_T}- {_S[1:]}-01",
    f"00-{_T}-{_S}-+1",
    f"00-{_T}-{_S}- 1",
]

FORBIDDEN_VALUES: list[str] = [
    f"00-{'0' * 32}-{_S}-01",
    f"00-{_T}-{'0' * 16}-01",
    f"00-{'0' * 32}-{'0' * 16}-00",
    f"ff-{_T}-{_S}-01",
    f"ff-{_T}-{_S}-00",
]


def _parse(ns: dict[str, Any], header: str) -> Any:
    parse = _learner(ns, "parse_traceparent")
    try:
        return parse(header)
    except NotImplementedError:
        raise
    except Exception as error:
        raise CheckFailed(
            f"parse_traceparent({header!r}) raised {type(error).__name__}: "
            "it should return a tuple for a valid header and None for an invalid one, never raise"
        ) from None


def _refused(ns: dict[str, Any], headers: list[str], what: str) -> None:
    accepted = [(h, got) for h in headers if (got := _parse(ns, h)) is not None]
    if accepted:
        header, got = accepted[0]
        raise CheckFailed(
            f"{what}: {len(accepted)} of {len(headers)} invalid headers were accepted, "
            f"e.g. {header!r} gave {got!r} instead of None"
        )


@check("q1", points=1, title="a valid header gives its trace-id, parent-id and the sampled bit")
def q1_valid(ns: dict[str, Any]) -> None:
    wrong = []
    for header, expected in VALID:
        got = _parse(ns, header)
        if got is None or not isinstance(got, tuple) or got != expected:
            wrong.append((header, got, expected))
    if wrong:
        header, got, expected = wrong[0]
        raise CheckFailed(
            f"{len(wrong)} of {len(VALID)} valid headers were read wrongly, "
            f"e.g. {header!r} gave {got!r} instead of the tuple {expected!r}"
        )


@check("q1", points=1, title="a header without four fields of 2, 32, 16 and 2 characters is refused")
def q1_shape(ns: dict[str, Any]) -> None:
    _refused(ns, WRONG_SHAPE, "wrong number or length of fields")


@check("q1", points=1, title="only lowercase hex digits are accepted")
def q1_lowercase_hex(ns: dict[str, Any]) -> None:
    _refused(ns, NOT_LOWERCASE_HEX, "characters other than 0-9 and a-f")


@check("q1", points=1, title="all-zero ids and version ff are refused")
def q1_forbidden_values(ns: dict[str, Any]) -> None:
    _refused(ns, FORBIDDEN_VALUES, "an all-zero trace-id or parent-id, or version ff")


# ----------------------------------------------------------------------------- question 2

_INF = math.inf
Buckets = list[tuple[float, float]]

# Cumulative (le, count) layouts: latency in seconds, per-second rates (fractions), powers of two.
_SECONDS: Buckets = [
    (0.005, 10),
    (0.01, 40),
    (0.025, 70),
    (0.05, 85),
    (0.1, 95),
    (0.25, 98),
    (0.5, 100),
    (_INF, 100),
]
_RATES: Buckets = [(0.001, 2.5), (0.0025, 4.0), (0.005, 12.0), (0.01, 17.0), (0.025, 19.9), (_INF, 20.0)]
_POWERS: Buckets = [(1, 0), (2, 5), (4, 120), (8, 170), (16, 196), (32, 199), (_INF, 200)]
_EMPTY_FIRST: Buckets = [(0.0001, 0), (0.005, 800), (0.01, 950), (_INF, 1000)]
_TWO: Buckets = [(0.25, 3), (1.0, 7), (_INF, 7)]
_EMPTY_AFTER: Buckets = [(0.1, 25), (0.2, 50), (0.4, 50), (0.8, 75), (1.6, 75), (_INF, 100)]
_TAIL: Buckets = [(0.05, 90), (0.1, 99), (0.2, 99), (0.5, 100), (_INF, 100)]
_SLOW: Buckets = [(0.1, 50), (0.5, 80), (_INF, 100)]
_NOTHING: Buckets = [(0.01, 0), (0.1, 0), (_INF, 0)]

# (q, buckets, expected). Prometheus 2.42 answers the same for histogram_quantile(q, ...) over
# the same bucket series (checked with `promtool test rules`, equal to the last bits of a
# float64), as its algorithm does (promql/quantile.go, bucketQuantile). Where a rank q * total
# lands exactly on a bucket's count, the product is exact in binary floating point.
INTERPOLATED: list[tuple[float, Buckets, float]] = [
    (0.5, _SECONDS, 0.015),
    (0.9, _SECONDS, 0.075),
    (0.99, _SECONDS, 0.375),
    (0.5, _RATES, 0.004375),
    (0.9, _RATES, 0.01 + 0.015 / 2.9),
    (0.99, _RATES, 0.01 + 0.042 / 2.9),
    (0.5, _POWERS, 2 + 2 * 95 / 115),
    (0.9, _POWERS, 8 + 8 * 10 / 26),
    (0.99, _POWERS, 16 + 16 * 2 / 3),
    (0.5, _EMPTY_FIRST, 0.0031625),
    (0.9, _EMPTY_FIRST, 0.005 + 0.005 / 1.5),
    (0.5, _TWO, 0.34375),
    (0.99, _TWO, 0.986875),
]

FIRST_BUCKET: list[tuple[float, Buckets, float]] = [
    (0.5, [(0.25, 60), (0.5, 90), (1.0, 99.5), (_INF, 100)], 0.25 * 50 / 60),
    (0.5, [(0.0005, 64), (0.001, 90), (_INF, 100)], 0.000390625),
    (0.9, [(2.5, 95), (5, 99), (10, 100), (_INF, 100)], 2.5 * 90 / 95),
]

ON_A_BOUNDARY: list[tuple[float, Buckets, float]] = [
    (0.5, [(1, 5), (2, 5), (4, 10), (_INF, 10)], 1.0),
    (0.5, _EMPTY_AFTER, 0.2),
    (0.75, _EMPTY_AFTER, 0.8),
    (0.9, _TAIL, 0.05),
    (0.99, _TAIL, 0.1),
    (1.0, _TWO, 1.0),
]

BEYOND_THE_BUCKETS: list[tuple[float, Buckets, float]] = [
    (0.9, _SLOW, 0.5),
    (0.99, _SLOW, 0.5),
    (0.5, [(0.005, 1), (0.01, 2), (_INF, 10)], 0.01),
    (0.5, _NOTHING, math.nan),
    (0.99, _NOTHING, math.nan),
]


def _close(got: Any, expected: float) -> bool:
    if not isinstance(got, int | float):
        return False
    if math.isnan(expected):
        return math.isnan(got)
    return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)


def _quantiles(ns: dict[str, Any], cases: list[tuple[float, Buckets, float]], what: str) -> None:
    quantile = _learner(ns, "histogram_quantile")
    wrong = []
    for q, buckets, expected in cases:
        try:
            got = quantile(q, list(buckets))
        except NotImplementedError:
            raise
        except Exception as error:
            got = f"{type(error).__name__}: {error}"
        if not _close(got, expected):
            wrong.append((q, buckets, got, expected))
    if wrong:
        q, buckets, got, expected = wrong[0]
        shown = ", ".join(f"({'math.inf' if math.isinf(le) else le}, {count})" for le, count in buckets)
        raise CheckFailed(
            f"{what}: {len(wrong)} of {len(cases)} estimates were wrong, e.g. q={q} over [{shown}] "
            f"gave {got!r} instead of {round(expected, 9)!r}"
        )


@check("q2", points=1, title="interpolates linearly inside the bucket that holds the rank")
def q2_interpolates(ns: dict[str, Any]) -> None:
    _quantiles(ns, INTERPOLATED, "interpolation inside a bucket")


@check("q2", points=1, title="the first bucket starts at 0")
def q2_first_bucket(ns: dict[str, Any]) -> None:
    _quantiles(ns, FIRST_BUCKET, "a rank in the first bucket")


@check("q2", points=1, title="a rank equal to a bucket's count gives that bucket's upper bound")
def q2_on_a_boundary(ns: dict[str, Any]) -> None:
    _quantiles(ns, ON_A_BOUNDARY, "a rank exactly on a bucket's count (the first bucket with count >= rank)")


@check("q2", points=1, title="the +Inf bucket gives the highest finite bound, and no observations give NaN")
def q2_beyond_the_buckets(ns: dict[str, Any]) -> None:
    _quantiles(ns, BEYOND_THE_BUCKETS, "a rank in the +Inf bucket, or an empty histogram")


# ----------------------------------------------------------------------------- question 3

Span = dict[str, Any]


def _span(span_id: str, parent_id: str | None, service: str, name: str, start: float, end: float) -> Span:
    return {
        "span_id": span_id,
        "parent_id": parent_id,
        "service": service,
        "name": name,
        "start_ms": start,
        "end_ms": end,
    }


# gateway -> order -> payment -> bank, each inside its parent, one child each.
CHAIN: list[Span] = [
    _span("a1", None, "gateway", "POST /orders/7/pay", 0.0, 120.0),
    _span("a2", "a1", "order", "PayOrder", 4.5, 116.0),
    _span("a3", "a2", "payment", "Charge", 30.0, 92.25),
    _span("a4", "a3", "bank", "POST /charges", 41.0, 90.0),
]
CHAIN_SELF = {"gateway": 8.5, "order": 49.25, "payment": 13.25, "bank": 49.0}

# order fans out to four services at once; inventory runs entirely within catalog's time.
PARALLEL: list[Span] = [
    _span("b5", "b1", "user", "GetUser", 80.0, 90.0),
    _span("b1", None, "order", "CreateOrder", 0.0, 100.0),
    _span("b3", "b1", "inventory", "Reserve", 15.0, 30.0),
    _span("b2", "b1", "catalog", "GetBook", 10.0, 40.0),
    _span("b4", "b1", "payment", "Charge", 35.0, 70.0),
]
PARALLEL_SELF = {"order": 30.0, "catalog": 30.0, "inventory": 15.0, "payment": 35.0, "user": 10.0}

# The gateway gave up at 50 while order worked on; payment's host clock runs behind, so its
# span starts before its parent's; a consumer handled the message after the publisher's span.
STICKING_OUT: list[Span] = [
    _span("c1", None, "gateway", "GET /orders/7", 0.0, 50.0),
    _span("c2", "c1", "order", "GetOrder", 30.0, 80.0),
    _span("c3", "c2", "payment", "GetReceipt", 25.0, 40.0),
    _span("c4", "c2", "notification", "consume order.viewed", 85.0, 95.0),
]
STICKING_OUT_SELF = {"gateway": 30.0, "order": 40.0, "payment": 15.0, "notification": 10.0}

# A whole order: several spans per service, listed out of order; the gateway only forwards.
SEVERAL: list[Span] = [
    _span("d7", "d4", "payment", "charge card", 70.0, 140.0),
    _span("d3", "d2", "order", "saga", 3.0, 190.0),
    _span("d5", "d3", "inventory", "Reserve", 26.0, 60.0),
    _span("d1", None, "gateway", "POST /orders", 0.0, 200.0),
    _span("d8", "d3", "order", "publish order.approved", 150.0, 190.0),
    _span("d4", "d3", "payment", "Charge", 61.0, 150.0),
    _span("d2", "d1", "order", "CreateOrder", 0.0, 200.0),
    _span("d6", "d3", "catalog", "GetBook", 5.0, 25.0),
]
SEVERAL_SELF = {"gateway": 0.0, "order": 57.0, "catalog": 20.0, "inventory": 34.0, "payment": 89.0}


def _self_times(ns: dict[str, Any], spans: list[Span], expected: dict[str, float], story: str) -> None:
    self_time_by_service = _learner(ns, "self_time_by_service")
    got = self_time_by_service([dict(s) for s in spans])
    if not isinstance(got, dict):
        raise CheckFailed(f"{story}: self_time_by_service should return a dict, got {type(got).__name__}")
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise CheckFailed(
            f"{story}: the dict should have one key per service that has a span, even with a self time "
            f"of 0; missing {missing}, unexpected {extra}"
        )
    wrong = {
        service: got[service]
        for service, value in expected.items()
        if not isinstance(got[service], int | float) or not math.isclose(got[service], value, abs_tol=1e-6)
    }
    if wrong:
        service = next(iter(wrong))
        raise CheckFailed(
            f"{story}: {len(wrong)} of {len(expected)} services have a wrong self time, "
            f"e.g. {service!r} got {wrong[service]!r} instead of {expected[service]!r}"
        )


@check("q3", points=1, title="a chain of calls: each span minus its one child")
def q3_chain(ns: dict[str, Any]) -> None:
    _self_times(ns, CHAIN, CHAIN_SELF, "four spans, each calling the next (only direct children count)")


@check("q3", points=1, title="overlapping children count once")
def q3_parallel(ns: dict[str, Any]) -> None:
    _self_times(ns, PARALLEL, PARALLEL_SELF, "a span whose children run in parallel and overlap")


@check("q3", points=1, title="a child sticking out of its parent counts only inside it")
def q3_sticking_out(ns: dict[str, Any]) -> None:
    _self_times(
        ns,
        STICKING_OUT,
        STICKING_OUT_SELF,
        "children starting before their parent, or ending after it, or entirely after it",
    )


@check("q3", points=1, title="self times are summed per service; no spans give an empty dict")
def q3_several(ns: dict[str, Any]) -> None:
    _self_times(ns, SEVERAL, SEVERAL_SELF, "a whole order, with several spans per service, in any order")
    _self_times(ns, [], {}, "no spans at all")


# ----------------------------------------------------------------------------- question 4

# Loads other than the visible ones: other seeds, sizes and user counts. Every load of nine
# orders or more holds all nine status x payment method combinations.
SERIES_BUDGET = 200
SMALL, LARGE = (45, 12, 11), (1500, 1200, 12)  # (orders, users, seed)


def _audit(ns: dict[str, Any], orders: int, users: int, seed: int, *, track_series: bool = True) -> Audit:
    labels_of = _learner(ns, "checkout_labels")
    record = _learner(ns, "record_checkout")
    labels = labels_of()
    try:
        return audit_instrumentation(
            record,
            tuple(labels),
            checkout_load(orders, users, seed=seed),
            purity_field="status",
            track_series=track_series,
        )
    except NotImplementedError:
        raise
    except Exception as error:
        raise CheckFailed(
            f"recording {orders} checkouts with labels {tuple(labels)!r} raised "
            f"{type(error).__name__}: {error}"
        ) from None


@check("q4", points=1, title="each checkout is observed once, and every series counts one status only")
def q4_per_status(ns: dict[str, Any]) -> None:
    audit = _audit(ns, 300, 80, 13)
    if audit.miscounted:
        raise CheckFailed(
            f"{len(audit.miscounted)} of {audit.calls} checkouts did not add exactly one observation "
            "of their seconds to exactly one series"
        )
    mixed = audit.mixed_series()
    if mixed:
        raise CheckFailed(
            f"{len(mixed)} series count checkouts of several statuses "
            f"(e.g. {sorted(next(iter(mixed.values())))}): the on-call engineer cannot chart each status"
        )


@check("q4", points=1, title="the histogram's series stay within the budget and do not grow with traffic")
def q4_bounded(ns: dict[str, Any]) -> None:
    small = _audit(ns, *SMALL)
    large = _audit(ns, *LARGE, track_series=False)
    if large.series > SERIES_BUDGET or large.series != small.series:
        raise CheckFailed(
            f"{small.series} series for {SMALL[0]} orders by {SMALL[1]} users, {large.series} for "
            f"{LARGE[0]} orders by {LARGE[1]} users (budget {SERIES_BUDGET}, the same for both)"
        )


@check(
    "q4",
    points=1,
    title="a trace search finds a checkout by its order id, and all of a user's by the user id",
)
def q4_findable(ns: dict[str, Any]) -> None:
    load = checkout_load(200, 25, seed=14)
    audit = _audit(ns, 200, 25, 14)
    by_user: dict[str, set[str]] = {}
    for (order, _), traces in zip(load, audit.traces_per_call, strict=True):
        by_user.setdefault(order["user_id"], set()).update(traces)
    lost = [
        o["order_id"]
        for (o, _), t in zip(load, audit.traces_per_call, strict=True)
        if audit.traces_with_attribute_value(o["order_id"]) != t or not t
    ]
    if lost:
        raise CheckFailed(
            f"for {len(lost)} of 200 orders a search by order id did not find exactly that checkout's trace"
        )
    wrong = [user for user, traces in by_user.items() if audit.traces_with_attribute_value(user) != traces]
    if wrong:
        raise CheckFailed(
            f"for {len(wrong)} of {len(by_user)} users a search by user id did not find all their traces"
        )


@check("q4", points=1, title="span names come from a short fixed list")
def q4_span_names(ns: dict[str, Any]) -> None:
    audit = _audit(ns, 600, 300, 15, track_series=False)
    if not all(audit.traces_per_call):
        raise CheckFailed("some checkouts recorded no span")
    if len(audit.span_names) > 3:
        raise CheckFailed(
            f"{len(audit.span_names)} different span names for {audit.calls} checkouts (at most 3)"
        )


# ----------------------------------------------------------------------------- question 5

# A workload whose hot spot has two callers (so its samples are split over several stacks)
# and a caller, ``serve``, above everything (the most total time, almost no self time). The
# names are drawn anew for every grading run.
_WORKLOAD = """
def {hot}(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def {warm}(n):
    return sorted(range(n, 0, -1))[0]

def price(n):
    return {hot}(n)

def restock(n):
    return {hot}(n // 2) + {warm}(n)

def serve():
    price(30_000)
    restock(30_000)
"""
_LOOP = '\nprint("ready", flush=True)\nwhile True:\n    serve()\n'
RECORD_S = 1.0


@contextlib.contextmanager
def _workload_process(source: str) -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", source + _LOOP], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "ready": the interpreter is up and the functions are defined
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


def _recorded_profile() -> Profile:
    """A profile of the workload, from py-spy; from pyinstrument in this process where ptrace is refused."""
    hot, warm = f"crunch_{secrets.token_hex(3)}", f"shuffle_{secrets.token_hex(3)}"
    source = _WORKLOAD.format(hot=hot, warm=warm)
    try:
        with _workload_process(source) as pid:
            return record_pid(pid, RECORD_S)
    except ProfilerUnavailable:
        namespace: dict[str, Any] = {}
        exec(compile(source, "<workload>", "exec"), namespace)
        return profile_call(namespace["serve"], duration_s=RECORD_S)


def _named(ns: dict[str, Any], collapsed: str, story: str) -> str:
    hottest_function = _learner(ns, "hottest_function")
    try:
        got = hottest_function(collapsed)
    except NotImplementedError:
        raise
    except Exception as error:
        raise CheckFailed(f"{story}: hottest_function raised {type(error).__name__}: {error}") from None
    if not isinstance(got, str):
        raise CheckFailed(f"{story}: hottest_function should return the function's name, got {got!r}")
    return got


@check(
    "q5",
    points=1,
    title="names the hot spot of a live process that the check profiles itself",
    timeout_s=40,
)
def q5_live_profile(ns: dict[str, Any]) -> None:
    profile = _recorded_profile()
    expected = profile.hottest().function
    got = _named(ns, to_collapsed(profile), f"a {profile.profiler} recording of a process the check started")
    if got != expected:
        raise CheckFailed(
            f"over a {profile.profiler} profile of {profile.total:.0f} {profile.weight_unit} the function "
            f"with the most self time is {expected!r}; hottest_function answered {got!r}"
        )


# The hot spot is sampled on three of its lines, under two callers: only summed does it win.
SPLIT = """<module> (shop.py:40);serve (shop.py:31);price (shop.py:12);tally_rows (ledger.py:8) 21
<module> (shop.py:40);serve (shop.py:31);price (shop.py:12);tally_rows (ledger.py:9) 19
<module> (shop.py:40);serve (shop.py:32);restock (shop.py:20);tally_rows (ledger.py:8) 22
<module> (shop.py:40);serve (shop.py:32);restock (shop.py:21);encode_json (codec.py:77) 35
<module> (shop.py:40);serve (shop.py:33);send (net.py:5) 30
<module> (shop.py:40);serve (shop.py:33) 4
"""

# serve is in every stack (the most total time); the leaf that spends the most is the answer.
# Frames as py-spy writes them for a module run with -m and for a closure.
_RUNPY = "_run_module_as_main (<frozen runpy>:198);_run_code (<frozen runpy>:88)"
SELF_NOT_TOTAL = "".join(
    f"{_RUNPY};{stack} {count}\n"
    for stack, count in [
        ("serve (app.py:30)", 12),
        ("serve (app.py:31);Codec.dumps.<locals>.walk (codec.py:14)", 41),
        ("serve (app.py:32);Index.lookup (index.py:52)", 38),
        ("serve (app.py:32);Index.lookup (index.py:52);Index._hash (index.py:60)", 9),
    ]
)


def _hottest_as_parsed(ns: dict[str, Any], collapsed: str, story: str, hint: str) -> None:
    expected = Profile(parse_collapsed(collapsed), "py-spy", 1.0).hottest().function
    got = _named(ns, collapsed, story)
    if got != expected:
        raise CheckFailed(f"{story}: got {got!r}; {hint}")


@check("q5", points=1, title="a function's self samples are summed over every stack and line it appears on")
def q5_split_over_stacks(ns: dict[str, Any]) -> None:
    _hottest_as_parsed(
        ns,
        SPLIT,
        "a hot spot called from two places and sampled on several of its lines",
        "the hot spot is the function with the most samples in all, not on one line",
    )


@check("q5", points=1, title="self time, not total: the caller above everything is not the hot spot")
def q5_self_not_total(ns: dict[str, Any]) -> None:
    _hottest_as_parsed(
        ns,
        SELF_NOT_TOTAL,
        "a caller in every stack, frames of runpy and a closure",
        "count the innermost frame of each stack (self time) and name it as py-spy writes it: "
        "a caller in every stack has the most total time, not the most self time",
    )
