"""Client channels: how one process calls another.

Two rules every outgoing call here follows:

* **Client-side load balancing by gRPC itself.** A target such as
  ``ipv4:127.0.0.1:7001,127.0.0.1:7002`` names every replica; with the ``round_robin``
  policy the channel keeps a connection to each and rotates calls over the ready ones,
  skipping a replica that went away. No home-made balancer, no proxy hop.
* **Discovery that follows change.** A target ``registry:<path>`` names an entry the launcher
  keeps (``bookstore.platform.discovery``); the channel follows the addresses it lists, so a
  replica added or removed reaches callers without restarting them.
* **A deadline on every call.** Without one, a call to a hung service waits forever and
  holds a thread while it does; that is how one slow service takes a whole system down.

Each channel also carries this process's telemetry interceptor (week 10: a client span and
the ``grpc_client_*`` metrics per call) when the process traces or serves metrics. The
runtime stands below ``bookstore.observability``, so it does not import it: observability
hands its wrapper in with ``instrument_channels_with`` when it is imported (see
``bookstore.observability.runtime``). A process that never imports it cannot trace, and its
channels stay plain.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc

from bookstore.platform.discovery import FollowingChannel, registry_entry

ROUND_ROBIN_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

ChannelWrapper = Callable[[grpc.Channel], grpc.Channel]

_instrument: ChannelWrapper = lambda channel: channel  # noqa: E731 - plain until observability says otherwise


def instrument_channels_with(wrapper: ChannelWrapper) -> None:
    """Every channel ``open_channel`` builds from now on passes through ``wrapper``."""
    global _instrument
    _instrument = wrapper


# Reconnect soon after a replica restarts: gRPC's defaults wait 1 s, then 1.6 times longer
# after each failed attempt, up to 120 s (``bookstore.launcher.outage`` measures the two).
RECONNECT_INITIAL_MS = 100
RECONNECT_MAX_MS = 1000


def open_channel(target: str) -> grpc.Channel:
    """A channel to ``target`` that balances calls round-robin over its addresses.

    ``target`` is a gRPC target (``ipv4:a,b``, ``127.0.0.1:7001``) or ``registry:<path>``,
    whose addresses the channel follows as they change.
    """
    entry = registry_entry(target)
    channel = (
        FollowingChannel(entry, lambda addresses: _round_robin(multi_address_target(addresses)))
        if entry is not None
        else _round_robin(target)
    )
    return _instrument(channel)


def _round_robin(target: str) -> grpc.Channel:
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.service_config", ROUND_ROBIN_CONFIG),
            ("grpc.enable_retries", 0),
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_INITIAL_MS),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
        ],
    )


def multi_address_target(addresses: list[str]) -> str:
    """``["127.0.0.1:7001", "127.0.0.1:7002"]`` -> ``"ipv4:127.0.0.1:7001,127.0.0.1:7002"``."""
    if not addresses:
        raise ValueError("a target needs at least one address")
    return "ipv4:" + ",".join(addresses)
