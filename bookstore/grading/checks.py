"""Hidden checks: how an instructor writes them, and how they run in the grader against the kernel.

An instructor keeps one check module per week in ``solutions/checks/weekNN.py``::

    from bookstore.grading.checks import CheckFailed, check

    @check("q1", points=1, title="returns the title of a known book")
    def known_book(ns: dict) -> None:            # ns: the learner kernel's globals()
        got = ns["find_book_title"](stub, 1)     # a missing name fails: "find_book_title is not defined"
        if got != "The Hobbit":
            raise CheckFailed(f"find_book_title(stub, 1) should return 'The Hobbit', got {got!r}")

A question scores the points of its passing checks, out of the points of all its checks. The
learner sees each check's *title* and, when it fails, its *message*; never its source.

What a learner is told when a check fails, and why:

* ``CheckFailed("...")``: the message, as written for them.
* any other exception: ``"TypeName: message"`` and nothing else. A traceback would quote the
  hidden check's source lines (and its file name), so none is ever produced or shown.
* the exercise stub's ``NotImplementedError("exercise")``: "not implemented yet".
* a check running longer than its timeout (20 s by default, ``timeout_s=`` per check): it fails
  alone, and the grader stops its thread if it can, so one endless loop costs one check.
* a check returning ``False`` fails (a ``return got == 5`` meant as an assertion).

How it runs. The grader executes the learner's notebook in a fresh, sandboxed kernel, then
runs the checks *in its own process*: the check source never enters the sandbox, and pass or
fail is decided where learner code cannot reach. A check's ``ns`` is a
:class:`RemoteNamespace`: ``ns["add"]`` is a proxy, and ``ns["add"](2, 3)`` runs ``add`` in
the kernel and brings back ``5`` as data (:mod:`bookstore.grading.remote`). A missing name
fails with "add is not defined". The check module executes in a private namespace, so its
helpers never mix with anything.

What a check author must know:

* Call learner code and compare what comes back: numbers, strings, lists, dicts, tuples,
  sets, bytes, enum members of the course, protobuf messages and frozen dataclasses of the
  course arrive as real values; any other object (a learner's class instance, a channel)
  arrives as a proxy that you can call, read attributes of and compare.
* What you pass to learner code stays yours: a fake, a clock, a stub, ``waits.append`` are
  called back in this process, so the check sees every call. Lists and dicts you pass are
  copies, copied back after the call; a list *attribute* of your object is a copy each time
  learner code reads it, so give your fakes methods (``ledger.add``) for learner code to change
  them. Learner code cannot set your objects' attributes or read their ``_private`` ones.
* Everything you pass is a capability: a real database connection can run any SQL. Pass
  fakes, or measure a real service from outside (its own counters).
* ``isinstance(got, SagaDefinition)`` works for the course's classes; a learner's own classes
  are proxies whose ``type(got).__name__`` is the learner's class name.

This module is the grader's; the kernel only ever loads :mod:`bookstore.grading.remote`.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bookstore.grading.remote import Endpoint

API_MODULE = "bookstore.grading.checks"
# The name under which hidden sources are compiled: a name linecache cannot resolve, so even
# an accidental traceback could not quote hidden lines.
HIDDEN_FILENAME = "<hidden checks>"
DEFAULT_CHECK_TIMEOUT_S = 20.0
MAX_MESSAGE_CHARS = 1000
STUB_MESSAGE = "exercise"  # what an exercise stub raises: NotImplementedError("exercise")

CheckFunction = Callable[[dict[str, Any]], object]
F = TypeVar("F", bound=Callable[..., object])


class CheckFailed(Exception):
    """The learner's code did not do what a check expects; the message is shown to the learner."""


class CheckTimedOut(BaseException):
    """Raised asynchronously in a check's thread to stop it once its time is up.

    A BaseException, so that learner code with ``except Exception`` does not swallow it.
    """


@dataclass(frozen=True)
class CheckSpec:
    """What the grader knows about a check without running it: shown to learners, except ``name``."""

    question: str
    points: float
    title: str
    name: str
    timeout_s: float | None = None


@dataclass(frozen=True)
class Check:
    spec: CheckSpec
    function: CheckFunction


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str  # empty when passed

    def to_json(self) -> dict[str, object]:
        return {"passed": self.passed, "message": self.message}


@dataclass(frozen=True)
class CheckModule:
    """A loaded check module: its checks in definition order and what they need."""

    checks: tuple[Check, ...]
    needs_cluster: bool = False

    @property
    def specs(self) -> tuple[CheckSpec, ...]:
        return tuple(c.spec for c in self.checks)

    def questions(self) -> dict[str, float]:
        """Question -> maximum points, in the order questions first appear."""
        return question_maxima(self.specs)


def question_maxima(specs: tuple[CheckSpec, ...] | list[CheckSpec]) -> dict[str, float]:
    maxima: dict[str, float] = {}
    for spec in specs:
        maxima[spec.question] = maxima.get(spec.question, 0.0) + spec.points
    return maxima


# Checks register here while load_checks executes a module; decorating outside a load (an
# instructor importing the module in a test, say) only marks the function.
_collecting: list[Check] | None = None
_load_lock = threading.Lock()


def check(
    question: str, *, points: float = 1, title: str | None = None, timeout_s: float | None = None
) -> Callable[[F], F]:
    """Declare a hidden check worth ``points`` towards ``question``."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("a check needs a question name such as 'q1'")
    if isinstance(points, bool) or not isinstance(points, int | float) or points <= 0:
        raise ValueError(f"points must be a positive number, got {points!r}")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")

    def register(function: F) -> F:
        spec = CheckSpec(
            question=question.strip(),
            points=float(points),
            title=title or function.__name__.replace("_", " "),
            name=function.__name__,
            timeout_s=timeout_s,
        )
        function.__bookstore_check__ = spec  # type: ignore[attr-defined]
        if _collecting is not None:
            _collecting.append(Check(spec, function))
        return function

    return register


def load_checks(source: str) -> CheckModule:
    """Execute a check module's source in a private namespace and collect its checks.

    While it runs, ``bookstore.grading.checks`` names *this* module object, so that the hidden
    source binds to this copy even where another was imported under that name.
    """
    global _collecting
    with _load_lock:
        this = sys.modules.get(__name__)
        saved = sys.modules.get(API_MODULE)
        if this is not None:
            sys.modules[API_MODULE] = this
        collected: list[Check] = []
        _collecting = collected
        namespace: dict[str, Any] = {"__name__": "bookstore_hidden_checks", "__builtins__": builtins}
        try:
            exec(compile(source, HIDDEN_FILENAME, "exec", dont_inherit=True), namespace)
        finally:
            _collecting = None
            if saved is not None:
                sys.modules[API_MODULE] = saved
            elif this is not None and __name__ != API_MODULE:
                sys.modules.pop(API_MODULE, None)
    return CheckModule(checks=tuple(collected), needs_cluster=namespace.get("NEEDS_CLUSTER") is True)


def not_defined(name: str) -> CheckFailed:
    return CheckFailed(f"{name} is not defined (define it, and run its cell, before submitting)")


class LearnerNamespace(dict[str, Any]):
    """A copy of the learner's globals; a missing name fails the check with a plain message."""

    def __missing__(self, name: str) -> Any:
        raise not_defined(name)


class RemoteNamespace(Mapping[str, Any]):
    """The learner kernel's globals, seen from the grader: each value a proxy, or data.

    ``ns["add"]`` asks the kernel's agent for the name; a function comes back as a
    :class:`~bookstore.grading.remote.Proxy` whose calls run in the kernel. Nothing is cached:
    each check sees the names as they are when it asks.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.endpoint.request("ns_has", None, [name]) is True

    def __getitem__(self, name: str) -> Any:
        try:
            return self.endpoint.request("ns_get", None, [name])
        except KeyError:
            raise not_defined(name) from None

    def __iter__(self) -> Iterator[str]:
        names = self.endpoint.request("ns_keys", None, [])
        return iter([n for n in names if isinstance(n, str)] if isinstance(names, list) else [])

    def __len__(self) -> int:
        return len(list(iter(self)))


def describe_failure(error: BaseException) -> str:
    """The one line a learner sees for an exception: never a traceback."""
    if isinstance(error, CheckFailed):
        text = str(error) or "check failed"
    elif isinstance(error, NotImplementedError) and error.args == (STUB_MESSAGE,):
        text = "not implemented yet: the exercise stub still raises NotImplementedError"
    else:
        detail = str(error)
        text = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return truncate(text)


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_check(
    check: Check, learner: Mapping[str, Any], *, default_timeout_s: float, cap_s: float | None = None
) -> CheckResult:
    """Run one check in a daemon thread, so a hung learner function costs this check only.

    ``cap_s`` shortens its time limit (what is left of the notebook's), never lengthens it.
    """
    timeout_s = check.spec.timeout_s or default_timeout_s
    if cap_s is not None:
        timeout_s = max(0.1, min(timeout_s, cap_s))
    outcome: dict[str, Any] = {}
    namespace = learner if isinstance(learner, RemoteNamespace) else LearnerNamespace(learner)

    def target() -> None:
        try:
            outcome["returned"] = check.function(namespace)  # type: ignore[arg-type]
        except BaseException as error:  # SystemExit from learner code must fail the check, not the run
            outcome["error"] = error

    thread = threading.Thread(target=target, name=f"bookstore-check-{check.spec.name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        if isinstance(namespace, RemoteNamespace) and thread.ident is not None:
            namespace.endpoint.cancel(thread.ident)  # stop the learner's call in the kernel
        _stop_thread(thread)
        return CheckResult(
            False, f"timed out after {timeout_s:g} s (an endless loop, or a call that never returns?)"
        )
    if "error" in outcome:
        return CheckResult(False, describe_failure(outcome["error"]))
    if outcome.get("returned") is False:
        return CheckResult(False, "check failed")
    return CheckResult(True, "")


def run_checks(
    module: CheckModule, learner: Mapping[str, Any], *, default_timeout_s: float
) -> list[CheckResult]:
    return [run_check(c, learner, default_timeout_s=default_timeout_s) for c in module.checks]


def _stop_thread(thread: threading.Thread) -> None:
    """Best effort: raise CheckTimedOut in a thread stuck in Python code (a C call finishes first)."""
    if thread.ident is None:
        return
    # AttributeError: not CPython; the daemon thread is then left to end with the process.
    with contextlib.suppress(AttributeError, OSError):
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(CheckTimedOut)
        )
