"""What every process stands on: settings, databases, the gRPC server runtime, channels,
discovery, fault injection, the status mapping, containers and child processes.

This is the ground floor of the bookstore: it imports nothing of the bookstore above
``bookstore.domain`` and ``bookstore.rpc``. What is built on it instruments it through its
seams (``bookstore.observability.runtime`` hands ``channels`` a wrapper and ``server.serve``
its telemetry); the launcher that starts a whole bookstore is ``bookstore.launcher``."""
