"""The bookstore's users, as Locust sees them: the locustfile of weeks 8 and 10 and the load benchmark.

**Never import this module** (nor ``locust``) in a notebook kernel, a test process or the
package: importing ``locust`` monkey-patches the standard library with gevent (sockets,
threads, ``time.sleep``) for the whole process, which breaks gRPC, the cluster's threads and
the kernel itself. Locust runs it in a process of its own:
``locust -f bookstore/launcher/locust/journey.py --headless ...``, which is what
``bookstore.launcher.locust.runner`` starts. Nothing in ``bookstore`` imports this file.

Two kinds of user, chosen on Locust's command line by class name:

``Shopper``
    The journey of the OpenTelemetry Demo's load generator, told for a bookstore: sign up and
    log in once (a real JWT from the gateway), then browse the catalog, open book pages, place
    an order, and look at one's orders, weighted like a shop's traffic (mostly browsing);
    ``--bookstore-steps`` keeps some of those steps only (``browse,open_book``: browsing alone).
    ``--bookstore-username`` and ``--bookstore-password`` make every shopper log in to that one
    account instead of signing up.
``PageReader``
    The week 8 avalanche: three requests in four open a book page (catalog ``GetBook``), one in
    four lists the user's orders (order service). All readers send one bearer token
    (``--bookstore-token``), so the run does not start with a burst of password hashing. Each
    reader waits a random part of one pace before its first request, so that arrivals are even.

Both users pace themselves (``PacedUser``): each starts a task every
``--bookstore-pace-s`` seconds, whatever the last one took, *as long as it took less*. So
``N`` users offer ``N / pace`` requests a second, like an open-loop load, until a response
takes longer than the pace; then that user falls behind, as a real person waiting for a page
does. Keep the pace above the request timeout where the offered rate must hold.

``--bookstore-request-log PATH`` writes one CSV line per request (start time in Unix seconds,
name, outcome, whether Locust counted it failed, latency, order id): Locust's own CSV files
keep aggregates only, and an experiment that draws every request on a time axis (week 8's
timelines) needs the requests.
"""

from __future__ import annotations

import csv
import random
import secrets
import time
from typing import IO, Any

import gevent
import locust.stats
from locust import FastHttpUser, events
from locust.env import Environment
from locust.exception import StopUser

BOOKS = 20
"""The seeded catalog holds books 1..20 (``bookstore.services.catalog``)."""
LOG_FIELDS = ("start_unix_s", "name", "outcome", "failed", "latency_s", "order_id")
"""The request log's columns; ``bookstore.launcher.locust.stats`` reads them by these names."""
SIGN_IN_TRIES = 3
# Names of the requests, as Locust's statistics group them: the gateway's routes.
BROWSE, BOOK_PAGE, ORDER, MY_ORDERS = "GET /books", "GET /books/{book_id}", "POST /orders", "GET /orders"
REGISTER, LOGIN = "POST /auth/register", "POST /auth/login"


@events.init_command_line_parser.add_listener
def add_options(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("bookstore")
    group.add_argument("--bookstore-pace-s", type=float, default=1.0, help="seconds between a user's tasks")
    group.add_argument("--bookstore-timeout-s", type=float, default=3.0, help="a request's timeout")
    group.add_argument("--bookstore-username", default="", help="Shopper: one account for all (else sign up)")
    # Secrets come from the environment, where ``ps`` does not show them.
    group.add_argument("--bookstore-password", default="", env_var="LOCUST_BOOKSTORE_PASSWORD",
                       help="that account's password")
    group.add_argument("--bookstore-token", default="", env_var="LOCUST_BOOKSTORE_TOKEN",
                       help="PageReader: the bearer token every reader sends")
    group.add_argument("--bookstore-request-log", default="", help="a CSV file: one line per request")
    group.add_argument("--bookstore-steps", default="", help="Shopper: only these tasks (comma-separated)")


class RequestLog:
    """One CSV line per request, from Locust's ``request`` event (gevent: no locking needed)."""

    def __init__(self, path: str) -> None:
        # Line-buffered: a reader (``LocustRun.started_at``) sees each line as soon as it is written.
        self._file: IO[str] = open(path, "w", newline="", buffering=1)  # noqa: SIM115 - closed on quitting
        self._writer = csv.writer(self._file)
        self._writer.writerow(LOG_FIELDS)

    def on_request(
        self, name: str, response_time: float, response: Any, exception: BaseException | None,
        start_time: float, **_: Any,
    ) -> None:
        order_id = ""
        if exception is None and name == ORDER and response.status_code == 201:
            order_id = response.json().get("order_id", "")
        outcome = outcome_of(response, exception)
        failed = int(exception is not None)  # what Locust counts as a failure, ``expect`` included
        latency_s = f"{response_time / 1000:.6f}"
        self._writer.writerow((f"{start_time:.6f}", name, outcome, failed, latency_s, order_id))

    def close(self, **_: Any) -> None:
        self._file.close()


def outcome_of(response: Any, exception: BaseException | None) -> str:
    """The status code, ``"200 cache"`` for the gateway's fallback, ``"timeout"``, or the error's type."""
    status = getattr(response, "status_code", 0) or 0
    if status:
        cached = (response.headers or {}).get("X-Bookstore-Fallback") == "cache"
        return f"{status} cache" if cached else str(status)
    if exception is None:
        return "no answer"
    # geventhttpclient wraps a timeout in RetriesExceeded(original=...): look inside.
    causes = (exception, getattr(exception, "original", None), exception.__cause__, exception.__context__)
    text = " ".join(f"{type(e).__name__} {e}" for e in causes if e is not None).lower()
    return "timeout" if "timeout" in text or "timed out" in text else type(exception).__name__


@events.init.add_listener
def configure(environment: Environment, **_: Any) -> None:
    # gevent's loop caches "now" from when it was made, seconds ago on a busy machine (imports);
    # --run-time's timer starts from that cached time and would end the run that much early.
    gevent.get_hub().loop.update_now()
    options = environment.parsed_options
    if options is None:
        return
    for user in (Shopper, PageReader):
        user.pace_s = options.bookstore_pace_s
        user.network_timeout = user.connection_timeout = options.bookstore_timeout_s
    environment.events.quitting.add_listener(let_the_csv_writer_catch_up)
    if options.bookstore_steps:
        steps = options.bookstore_steps.split(",")
        unknown = set(steps) - {step.__name__ for step in JOURNEY}
        if unknown:
            raise ValueError(f"no such step of the journey: {sorted(unknown)}; the steps: {list(JOURNEY)}")
        Shopper.tasks = {step: weight for step, weight in JOURNEY.items() if step.__name__ in steps}
    if options.bookstore_request_log:
        log = RequestLog(options.bookstore_request_log)
        environment.events.request.add_listener(log.on_request)
        environment.events.quitting.add_listener(log.close)


def let_the_csv_writer_catch_up(**_: Any) -> None:
    """Wait for one more write of Locust's CSV files before it closes them.

    Locust rewrites its CSV files once a ``CSV_STATS_INTERVAL_SEC`` and, at the end, closes them
    as they are: the requests of the last second would be missing from ``_stats.csv``. By the
    time ``quitting`` fires every user has stopped, so the next write is the final count.
    """
    gevent.sleep(locust.stats.CSV_STATS_INTERVAL_SEC + 0.1)


def expect(response: Any, *statuses: int) -> None:
    """Count the request as failed unless it ended in one of ``statuses``."""
    if response.status_code == 0:
        return  # no answer at all (timeout, refused): Locust reports the error itself
    if response.status_code not in statuses:
        response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")


class PacedUser(FastHttpUser):
    """Starts a task every ``pace_s`` seconds, or at once when the last one took longer.

    Locust's ``constant_pacing`` counts from the moment the user was made, so a user that
    waited before its first task (``PageReader``) would fall back in step with all the
    others; this one counts from the end of ``on_start``.
    """

    abstract = True
    pace_s = 1.0
    auth: dict[str, str]

    def on_start(self) -> None:
        self._last_start = time.perf_counter()

    def wait_time(self) -> float:
        now = time.perf_counter()
        self._last_start = max(self._last_start + self.pace_s, now)
        return self._last_start - now

    def call(self, method: str, path: str, name: str, *expected: int, **options: Any) -> Any:
        """One request, counted as failed unless it ends in one of ``expected``; the response."""
        with self.client.request(method, path, name=name, catch_response=True, **options) as response:
            expect(response, *expected)
            return response


# The tasks, shared by both users; each takes the user that runs it.
def browse(user: PacedUser) -> None:
    user.call("GET", "/books?page_size=10", BROWSE, 200)


def open_book(user: PacedUser) -> None:
    user.call("GET", f"/books/{random.randint(1, BOOKS)}", BOOK_PAGE, 200)


def order(user: PacedUser) -> None:
    body = {"items": [{"book_id": random.randint(1, BOOKS), "quantity": 1}]}
    user.call("POST", "/orders", ORDER, 201, json=body, headers=user.auth)


def my_orders(user: PacedUser) -> None:
    user.call("GET", "/orders", MY_ORDERS, 200, headers=user.auth)


# Task -> weight: Locust documents this dict form, though it annotates ``tasks`` as a list.
JOURNEY = {browse: 3, open_book: 3, order: 2, my_orders: 1}
"""The shopper's steps and how often each is taken; ``--bookstore-steps`` keeps some of them."""


class Shopper(PacedUser):
    """Signs up, logs in, then browses, opens book pages, orders, and checks their orders."""

    tasks = JOURNEY  # type: ignore[assignment]

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {self.sign_in()}"}
        super().on_start()

    def sign_in(self) -> str:
        """Sign up (unless an account was given) and log in: a JWT. Three tries, then this user stops.

        Signing up and logging in hash a password (Argon2, memory-hard on purpose): many users
        starting at once on a small machine can outlast the gateway's deadline. A user retries
        as a person would, and one that cannot get in stops rather than send requests that can
        only fail with 401. Every failed try still counts as a failure in the statistics.
        """
        options = self.environment.parsed_options
        username, password = options.bookstore_username, options.bookstore_password
        signed_up = bool(username)
        if not signed_up:
            username, password = f"shopper-{secrets.token_hex(6)}", secrets.token_urlsafe(12)
        credentials = {"username": username, "password": password}
        for attempt in range(SIGN_IN_TRIES):
            if not signed_up:
                # 409: an earlier try did create the account after its answer was lost to a timeout.
                answer = self.call("POST", "/auth/register", REGISTER, 201, 409, json=credentials)
                signed_up = answer.status_code in (201, 409)
            if signed_up:
                login = self.call("POST", "/auth/login", LOGIN, 200, json=credentials)
                if login.status_code == 200:
                    return str(login.json()["access_token"])
            gevent.sleep(0.5 * (attempt + 1))
        raise StopUser()


class PageReader(PacedUser):
    """Week 8's reader: a book page three times in four, their orders once in four (one shared token)."""

    tasks = {open_book: 3, my_orders: 1}  # type: ignore[assignment]

    def on_start(self) -> None:
        # A token made once by the caller: a login per reader would open the run with a burst of
        # password hashing (Argon2, tens of ms of CPU each), which is not the load under study.
        options = self.environment.parsed_options
        self.auth = {"Authorization": f"Bearer {options.bookstore_token}"}
        # Locust starts a second's worth of users at once, and paced users would then arrive in
        # waves, all together every pace. A random first delay within one pace spreads them evenly.
        gevent.sleep(random.uniform(0, options.bookstore_pace_s))
        super().on_start()
