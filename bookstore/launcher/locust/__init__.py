"""Load from Locust, the load generator the field uses (the OpenTelemetry Demo's among others).

``journey.py`` is the locustfile: the bookstore's users, run by Locust in a process of its own
and never imported here (importing ``locust`` monkey-patches a process with gevent).
``runner`` starts that process against a cluster's gateway and ends it by its PID; ``stats``
reads the CSV files Locust writes; ``plots`` draws them. Weeks 8 and 10 and
``benchmarks/bench_load.py`` use them.

Why under ``platform``: like the launcher and the fault injector, this is a tool the
experiments use on a running cluster, not a part of the bookstore; it depends on nothing
above ``platform`` (it speaks HTTP to the gateway, like any client).
"""

from bookstore.launcher.locust.runner import LoadPlan, LocustError, LocustRun, run_locust, start_locust
from bookstore.launcher.locust.stats import HistoryPoint, LocustStats, RequestRecord, RequestStats, read_run

__all__ = [
    "HistoryPoint",
    "LoadPlan",
    "LocustError",
    "LocustRun",
    "LocustStats",
    "RequestRecord",
    "RequestStats",
    "read_run",
    "run_locust",
    "start_locust",
]
