"""What the runner asks of Locust: the command line and environment a plan makes (no process started)."""

from __future__ import annotations

import itertools

import pytest

from bookstore.launcher.locust.runner import LOCUSTFILE, LoadPlan, gateway_of


def test_a_plan_becomes_a_headless_command_line_for_its_user_class() -> None:
    plan = LoadPlan(users=160, duration_s=4, user_class="PageReader", pace_s=2, request_timeout_s=3)
    arguments = plan.arguments("http://127.0.0.1:8080")
    assert arguments[:3] == ["-f", str(LOCUSTFILE), "PageReader"]
    assert "--headless" in arguments
    options = dict(itertools.pairwise(arguments))
    assert options["--host"] == "http://127.0.0.1:8080"
    assert (options["--users"], options["--spawn-rate"], options["--run-time"]) == ("160", "160", "4s")
    assert options["--stop-timeout"] == options["--bookstore-timeout-s"] == "3"
    assert options["--bookstore-pace-s"] == "2"


def test_secrets_travel_in_the_environment_not_on_the_command_line() -> None:
    plan = LoadPlan(users=1, duration_s=1, username="ada", password="analytical engine", token="t0k3n")
    arguments = plan.arguments("http://gateway")
    assert "analytical engine" not in arguments and "t0k3n" not in arguments
    assert plan.environment() == {
        "LOCUST_BOOKSTORE_PASSWORD": "analytical engine",
        "LOCUST_BOOKSTORE_TOKEN": "t0k3n",
    }


def test_the_offered_rate_is_users_over_pace() -> None:
    assert LoadPlan(users=160, duration_s=4, pace_s=2).offered_per_s == 80
    spawning = dict(itertools.pairwise(LoadPlan(users=5, duration_s=1, spawn_rate=1).arguments("h")))
    assert spawning["--spawn-rate"] == "1"


@pytest.mark.parametrize("field", ["users", "duration_s", "pace_s", "request_timeout_s", "spawn_rate"])
def test_a_plan_refuses_zero(field: str) -> None:
    values = {"users": 1, "duration_s": 1.0} | {field: 0}
    with pytest.raises(ValueError, match=field):
        LoadPlan(**values)


def test_the_target_is_a_url_or_anything_with_a_gateway_url() -> None:
    class FakeCluster:
        gateway_url = "http://127.0.0.1:9"

    assert gateway_of("http://x") == "http://x"
    assert gateway_of(FakeCluster()) == "http://127.0.0.1:9"


def test_a_plan_may_keep_some_steps_of_the_journey_only() -> None:
    plan = LoadPlan(users=1, duration_s=1, steps=("browse", "order"))
    options = dict(itertools.pairwise(plan.arguments("h")))
    assert options["--bookstore-steps"] == "browse,order"
    assert dict(itertools.pairwise(LoadPlan(users=1, duration_s=1).arguments("h")))["--bookstore-steps"] == ""
