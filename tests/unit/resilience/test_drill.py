"""The fault drill: the real breaker against a modelled payment, in simulated time."""

from __future__ import annotations

import math

from bookstore.resilience import BreakerSettings, State
from bookstore.resilience.drill import Scenario, payment_drill

SHORT = Scenario(rate_per_s=20, fault_s=10, after_s=10, slow_rate=0.8)


def test_without_a_trip_every_slow_call_waits_out_its_deadline() -> None:
    never_trips = BreakerSettings(is_failure=lambda error: False)  # counts nothing, so never opens
    result = payment_drill(never_trips, SHORT, seed=1)
    slow = result.outcomes["DEADLINE_EXCEEDED"]
    assert len(result.latencies_s) == SHORT.checkouts == 400
    assert 0.7 * 200 < slow < 0.9 * 200  # 80 % of the 200 calls made during the fault
    assert result.latencies_s.count(SHORT.deadline_s) == slow and result.p99_s == SHORT.deadline_s
    assert result.outcomes["CIRCUIT_OPEN"] == 0 and result.transitions == ()
    assert result.recovered_after_s == 0.0


def test_an_open_breaker_refuses_fast_and_recovers_only_through_a_trial() -> None:
    settings = BreakerSettings(window_size=10, minimum_calls=3, open_timeout_s=4.0, half_open_max_calls=1)
    result = payment_drill(settings, SHORT, seed=1)
    assert result.outcomes["CIRCUIT_OPEN"] > 200 and result.percentile_s(0.9) < SHORT.deadline_s
    assert result.transitions[0][1:] == (State.CLOSED, State.OPEN)
    assert result.transitions[-1][2] is State.CLOSED
    # Closed again within a timeout, plus a trial caught by the clearing, plus that trial's own wait.
    assert 0 < result.recovered_after_s <= 2 * settings.open_timeout_s + SHORT.deadline_s


def test_a_breaker_still_open_at_the_end_has_not_recovered() -> None:
    result = payment_drill(BreakerSettings(minimum_calls=3, open_timeout_s=60.0), SHORT, seed=1)
    assert math.isinf(result.recovered_after_s) and "not CLOSED at the end" in result.summary()


def test_a_seed_fixes_which_calls_hang() -> None:
    settings = BreakerSettings(window_size=10, minimum_calls=3, open_timeout_s=2.0)
    first, again, other = (payment_drill(settings, SHORT, seed=s) for s in (3, 3, 4))
    assert first.latencies_s == again.latencies_s and first.transitions == again.transitions
    assert first.latencies_s != other.latencies_s
