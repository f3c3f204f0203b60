"""A service's handlers called in the caller's thread: its code path without its process.

A service process runs its servicer behind the fault interceptor on a gRPC thread pool. Some
tools can only see the thread they run on: an in-process profiler such as pyinstrument, the
fallback of week 10 where the operating system refuses to let py-spy read another process.
:class:`InProcessService` registers the same servicer (through the service's own
``register``, so with its real store) and the same :class:`FaultInjectionInterceptor` around
it, and calls a method directly: no server, no socket, no thread pool.

What it is not: a way to serve traffic. There are no deadlines, no metadata, no health, no
concurrency; a handler that aborts raises :class:`Aborted`. Use the cluster for behaviour,
this for looking inside one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc

from bookstore.platform.faults import FaultInjectionInterceptor, FaultTable
from bookstore.platform.server import ServiceDefinition
from bookstore.platform.settings import Settings


class Aborted(Exception):
    """A handler ended its call with a status code (``context.abort``)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class _Context:
    """The little of ``grpc.ServicerContext`` a unary servicer uses without a network."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> None:
        return None


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class _Registrar:
    """Stands in for a grpc.Server while a service registers its servicers: keeps the handlers."""

    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.methods: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self.methods.update({f"/{service}/{name}": handler for name, handler in handlers.items()})

    def find(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method  # type: ignore[attr-defined]
        if method in self.methods:
            return self.methods[method]
        return next((h for g in self.generic if (h := g.service(details)) is not None), None)


class InProcessService:
    """One service's servicers and fault interceptor, called in this thread.

    ``faults`` is the table the interceptor reads: ``service.faults.set(Fault(...))`` injects
    what ``cluster.inject_fault`` would inject into the process.
    """

    def __init__(self, definition: ServiceDefinition, settings: Settings) -> None:
        self.name = definition.name
        self.faults = FaultTable()
        self._registrar = _Registrar()
        definition.register(self._registrar, settings)  # type: ignore[arg-type]
        self._interceptor = FaultInjectionInterceptor(self.faults)

    def call(self, method: str, request: Any) -> Any:
        """Call ``/package.Service/Method`` with ``request``; the response, or :class:`Aborted`."""
        find: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None] = self._registrar.find
        handler = self._interceptor.intercept_service(find, _CallDetails(method))
        if handler is None or handler.unary_unary is None:
            raise LookupError(f"{self.name} serves no unary method {method!r}")
        return handler.unary_unary(request, _Context())  # type: ignore[arg-type]
