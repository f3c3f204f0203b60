"""How soon a caller notices that a service is back: gRPC's reconnect backoff, measured and modelled.

**Why.** A channel whose connection failed does not try again at every call: it waits, and
waits longer after each failed attempt (gRPC's connection backoff: the first wait
``initial_s``, each next one ``multiplier`` times longer, capped at ``max_s``, each varied by
up to ``jitter`` either way so that a thousand clients do not reconnect in step). Calls made
while it waits fail at once with ``UNAVAILABLE``. So once the service is back, its callers
recover only at their next attempt: with gRPC's defaults (1 s, x1.6, at most 120 s) a caller
that saw a 6-second outage waits about 3 s more, and one that saw a 2-minute outage up to 2
minutes. ``bookstore.platform.channels`` starts at 0.1 s and caps at 1 s for that reason.

**What.** :func:`outage_and_return` kills a service of a running cluster, calls it through a
fresh channel with the backoff given until ``down_s`` have passed, restarts it, and times
the first call that succeeds. :func:`attempt_times` is the schedule without jitter, to
compare with; :func:`plot_reconnect` draws both.

**When not to.** A short cap costs a connection attempt per caller per ``max_s`` for as long
as a service is down: harmless for tens of callers on loopback, a reconnect storm for
thousands of callers of a service that is down for long. There, keep the cap higher and let
the callers learn that it is back another way (a registry, or ``wait_for_ready`` calls).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bookstore.platform.channels import RECONNECT_INITIAL_MS, RECONNECT_MAX_MS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bookstore.launcher.cluster import Cluster


@dataclass(frozen=True)
class Backoff:
    """A channel's reconnect backoff: the first wait, its growth, its cap (seconds)."""

    initial_s: float
    max_s: float
    multiplier: float = 1.6  # gRPC's, not settable from Python
    jitter: float = 0.2

    @property
    def options(self) -> list[tuple[str, int]]:
        """The channel options that set it."""
        return [
            ("grpc.initial_reconnect_backoff_ms", round(self.initial_s * 1000)),
            ("grpc.max_reconnect_backoff_ms", round(self.max_s * 1000)),
        ]


GRPC_DEFAULT = Backoff(initial_s=1.0, max_s=120.0)
"""What a channel does unless told otherwise."""
BOOKSTORE = Backoff(initial_s=RECONNECT_INITIAL_MS / 1000, max_s=RECONNECT_MAX_MS / 1000)
"""What the bookstore's channels use (``bookstore.platform.channels``)."""


def attempt_times(backoff: Backoff, until_s: float) -> list[float]:
    """When a channel that fails at 0 tries to connect again, up to ``until_s``, without jitter."""
    attempts, at, wait = [0.0], 0.0, backoff.initial_s
    while at + wait <= until_s:
        at += wait
        attempts.append(at)
        wait = min(wait * backoff.multiplier, backoff.max_s)
    return attempts


@dataclass(frozen=True)
class ReconnectRun:
    """One outage, as one caller saw it; times in seconds from the kill."""

    service: str
    backoff: Backoff
    back_at_s: float
    """When the restarted service answered its health check (the restart returned)."""
    recovered_at_s: float
    """When the caller's first call after that succeeded."""
    failed_calls: int

    @property
    def waited_s(self) -> float:
        """How long the caller went on failing after the service was back."""
        return self.recovered_at_s - self.back_at_s


def outage_and_return(
    cluster: Cluster, service: str, down_s: float, backoff: Backoff, *, poll_s: float = 0.02
) -> ReconnectRun:
    """Kill ``service``, call it for ``down_s`` through a channel with ``backoff``, restart it,
    and time the caller's first success. The service is running again when this returns."""
    channel = grpc.insecure_channel(cluster.address(service), options=backoff.options)
    health = health_pb2_grpc.HealthStub(channel)

    def call() -> bool:
        try:
            health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            return True
        except grpc.RpcError:
            return False

    try:
        if not call():
            raise RuntimeError(f"{service} does not answer before the outage: nothing to measure")
        failed = 0
        killed = time.perf_counter()
        cluster.kill(service)
        try:
            # Calls during the outage: each failure after a wait moves the channel along its backoff.
            while time.perf_counter() - killed < down_s:
                failed += not call()
                time.sleep(poll_s)
        finally:
            cluster.restart(service)
        back = time.perf_counter()
        # The next attempt comes within one longest wait; past it, something else is wrong.
        give_up = back + backoff.max_s * (1 + backoff.jitter) + 10.0
        while not call():
            failed += 1
            if time.perf_counter() > give_up:
                raise RuntimeError(f"{service} is serving again, but this caller still fails: see its log")
            time.sleep(poll_s)
        return ReconnectRun(service, backoff, back - killed, time.perf_counter() - killed, failed)
    finally:
        channel.close()


def plot_reconnect(run: ReconnectRun, ax: Axes | None = None) -> Axes:
    """The outage shaded, the attempts the backoff schedules (ticks), and the first success."""
    import matplotlib.pyplot as plt

    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(8, 1.8))
    end = run.recovered_at_s + 1.0
    ax.axvspan(0, run.back_at_s, color="tab:red", alpha=0.15, label=f"{run.service} down")
    ax.vlines(attempt_times(run.backoff, end), 0, 1, color="grey", label="attempts (without jitter)")
    late = f"first success, {run.waited_s:.1f} s late"
    ax.plot([run.recovered_at_s], [0.5], "o", color="tab:green", label=late)
    ax.set_xlim(-0.2, end)
    ax.set_yticks([])
    ax.set_xlabel("seconds since the kill")
    backoff = run.backoff
    ax.set_title(f"first wait {backoff.initial_s:g} s, x{backoff.multiplier:g}, at most {backoff.max_s:g} s")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    if figure is not None:  # a figure of the caller's is laid out by the caller
        figure.tight_layout()
    return ax
