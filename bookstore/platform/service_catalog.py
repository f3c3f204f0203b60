"""The service catalog: every process of the bookstore, described once.

One entry per process says what the rest of the code needs to know about it:

* ``name``: how the launcher, the settings (``BOOKSTORE_<NAME>_TARGET``), the logs and the
  deployment files call it;
* ``module``: what ``python -m`` runs to serve it;
* ``stub``: where its generated gRPC client class lives, as a module path and a class name,
  imported only when someone asks for it (``ServiceEntry.stub_class``), so that reading the
  catalog loads no generated code;
* ``kind``: a gRPC service, the HTTP gateway, an event consumer (week 9) or the monolith
  (the "before" picture);
* ``peers``: the services it calls. Each peer gets a channel in the caller's client module and
  a ``BOOKSTORE_<PEER>_TARGET`` from the launcher; scaling a peer tells its callers.

Modules are named by string, never imported here: this module sits low enough that the
settings, the launcher, the client modules and the deployment tests all read it, and none of
them pulls in a service it does not run.

How to add a service, say ``shipping``:

1. write ``protos/bookstore/rpc/v1/shipping.proto`` and generate its code
   (``make proto``: ``bookstore/rpc/v1/shipping_pb2*.py``);
2. make its folder ``bookstore/services/shipping/`` (``store.py``, ``servicer.py``,
   ``__main__.py``), like any other service's;
3. add one ``ServiceEntry`` to ``SERVICES`` below, and the name to the ``peers`` of each
   service that calls it;
4. add it to ``docker-compose.yml`` and ``infra/k8s/``: the deployment tests read this
   catalog and name every process, peer or target those files lack.

``tests/unit/platform/test_service_catalog.py`` checks that the catalog, the proto folder and
the services' folders agree, so a forgotten entry fails there, naming what is missing.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Kind(enum.StrEnum):
    """What sort of process an entry is; the launcher starts and probes each sort its own way."""

    SERVICE = "grpc service"  # a gRPC server with its own database: bookstore/services/<name>/
    GATEWAY = "gateway"  # the HTTP front door; health on /healthz, /metrics on its own port
    CONSUMER = "consumer"  # week 9: reads events from RabbitMQ; started only with messaging
    MONOLITH = "monolith"  # the single-process bookstore the course starts from


@dataclass(frozen=True)
class StubRef:
    """Where a generated client stub class lives, e.g. ``bookstore.rpc.v1.catalog_pb2_grpc``."""

    module: str
    name: str

    def resolve(self) -> Any:
        """The stub class itself (imported on first use): call it with a channel."""
        return getattr(importlib.import_module(self.module), self.name)


@dataclass(frozen=True)
class ServiceEntry:
    """One process of the bookstore (see the module docstring for each field)."""

    name: str
    kind: Kind
    module: str
    stub: StubRef | None = None
    proto: str | None = None  # file under protos/bookstore/rpc/v1/ defining the stub's service
    peers: tuple[str, ...] = ()

    @property
    def target_variable(self) -> str:
        """The variable that tells a caller where this service is."""
        return f"BOOKSTORE_{self.name.upper()}_TARGET"

    def stub_class(self) -> Any:
        """The generated stub class of this process; an error if it serves no gRPC API."""
        if self.stub is None:
            raise ValueError(f"{self.name!r} serves no gRPC API of its own; it has no stub")
        return self.stub.resolve()


_RPC = "bookstore.rpc.v1"


def _grpc(name: str, service: str, *, peers: tuple[str, ...] = ()) -> ServiceEntry:
    return ServiceEntry(
        name,
        Kind.SERVICE,
        f"bookstore.services.{name}",
        StubRef(f"{_RPC}.{name}_pb2_grpc", f"{service}Stub"),
        f"{name}.proto",
        peers,
    )


def _consumer(name: str, *, peers: tuple[str, ...] = ()) -> ServiceEntry:
    return ServiceEntry(
        name,
        Kind.CONSUMER,
        f"bookstore.messaging.consumers.{name}",
        StubRef(f"{_RPC}.consumer_pb2_grpc", "ConsumerServiceStub"),
        "consumer.proto",
        peers,
    )


# In start order: a process comes after the peers it calls.
SERVICES: tuple[ServiceEntry, ...] = (
    _grpc("user", "UserService"),
    _grpc("catalog", "CatalogService"),
    _grpc("inventory", "InventoryService"),
    _grpc("payment", "PaymentService"),
    _grpc("order", "OrderService", peers=("catalog", "inventory", "payment")),
    ServiceEntry("gateway", Kind.GATEWAY, "bookstore.gateway", peers=("user", "catalog", "order")),
    _consumer("notification"),
    _consumer("analytics"),
    _consumer("inventory_sync", peers=("inventory",)),
    ServiceEntry("monolith", Kind.MONOLITH, "bookstore.monolith"),
)

_BY_NAME = {entry.name: entry for entry in SERVICES}


def entry(name: str) -> ServiceEntry:
    """The entry named ``name``; a ``ValueError`` listing the known names if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"no service {name!r} in the catalog; known: {', '.join(_BY_NAME)}") from None


def names(*kinds: Kind) -> tuple[str, ...]:
    """The names of every entry of these kinds (of every kind when none is given), in start order."""
    return tuple(e.name for e in SERVICES if not kinds or e.kind in kinds)


def stubs(channels: Mapping[str, Any]) -> dict[str, Any]:
    """Each service's channel wrapped in that service's stub: ``{"payment": PaymentServiceStub(...)}``."""
    return {name: entry(name).stub_class()(channel) for name, channel in channels.items()}


def callers_of(name: str) -> tuple[str, ...]:
    """The processes that call ``name``: whom to tell, or restart, when its addresses change."""
    return tuple(e.name for e in SERVICES if name in e.peers)
