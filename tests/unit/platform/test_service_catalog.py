"""The service catalog agrees with the tree: every entry has its folder, entry point and proto,
and every service folder, consumer and proto file has its entry.

Adding a service and forgetting its catalog entry (or the reverse) fails here, with a line
naming the folder or file and what it lacks, instead of a missing target far away at run time.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from bookstore.platform import service_catalog
from bookstore.platform.service_catalog import SERVICES, Kind, ServiceEntry

REPO = Path(__file__).resolve().parents[3]
PROTO_DIR = REPO / "protos" / "bookstore" / "rpc" / "v1"
SERVICES_DIR = REPO / "bookstore" / "services"
CONSUMERS_DIR = REPO / "bookstore" / "messaging" / "consumers"
# Served by every gRPC process next to its own API (faults and call counters), so no one entry owns it.
SHARED_PROTOS = {"admin.proto"}


def module_file(module: str) -> Path | None:
    """The file ``python -m module`` runs, found without importing anything."""
    path = REPO.joinpath(*module.split("."))
    if (path / "__main__.py").is_file():
        return path / "__main__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def problems(entries: Sequence[ServiceEntry]) -> list[str]:
    """Every disagreement between ``entries`` and the tree, one line each, naming the cause."""
    found: list[str] = []
    by_name = {e.name: e for e in entries}
    if len(by_name) != len(entries):
        found.append("two entries share a name")
    for e in entries:
        if module_file(e.module) is None:
            found.append(f"{e.name}: no entry point for `python -m {e.module}`")
        if e.kind is Kind.SERVICE and e.module != f"bookstore.services.{e.name}":
            found.append(f"{e.name}: a gRPC service runs from bookstore/services/{e.name}/, not {e.module}")
        main = module_file(e.module)
        if e.kind is Kind.SERVICE and main is not None and f'name="{e.name}"' not in main.read_text():
            # A folder copied from another service and not renamed would log and count as that one.
            found.append(f"{e.name}: bookstore/services/{e.name}/__main__.py does not serve name={e.name!r}")
        if e.stub is not None:
            service = e.stub.name.removesuffix("Stub")
            proto = PROTO_DIR / (e.proto or "")
            if not e.proto or not proto.is_file():
                found.append(f"{e.name}: no proto file {e.proto!r} in protos/bookstore/rpc/v1/")
            elif not re.search(rf"^service {service} \{{", proto.read_text(), re.MULTILINE):
                found.append(f"{e.name}: {e.proto} defines no `service {service}`")
            generated = module_file(e.stub.module)
            defines = re.compile(rf"^class {e.stub.name}\b", re.MULTILINE)
            if generated is None or not defines.search(generated.read_text()):
                found.append(f"{e.name}: {e.stub.module} has no class {e.stub.name} (run `make proto`)")
        for peer in e.peers:
            if peer not in by_name or by_name[peer].kind is not Kind.SERVICE:
                found.append(f"{e.name}: its peer {peer!r} is not a gRPC service of the catalog")
            elif entries.index(by_name[peer]) > entries.index(e):
                found.append(f"{e.name}: listed before its peer {peer}, which must start first")
    services = {e.name for e in entries if e.kind is Kind.SERVICE}
    for folder in sorted(p for p in SERVICES_DIR.iterdir() if (p / "__main__.py").is_file()):
        if folder.name not in services:
            found.append(f"bookstore/services/{folder.name}/ has no gRPC service entry in the catalog")
    consumers = {e.name for e in entries if e.kind is Kind.CONSUMER}
    for path in sorted(CONSUMERS_DIR.glob("*.py")):
        if "__main__" in path.read_text() and path.stem not in consumers:
            found.append(f"bookstore/messaging/consumers/{path.name} has no consumer entry in the catalog")
    used = {e.proto for e in entries} | SHARED_PROTOS
    for proto in sorted(PROTO_DIR.glob("*.proto")):
        if proto.name not in used:
            found.append(f"protos/bookstore/rpc/v1/{proto.name} is served by no entry of the catalog")
    return found


def test_the_catalog_the_protos_and_the_service_folders_agree() -> None:
    assert problems(SERVICES) == []


def test_a_forgotten_entry_is_named_with_the_folder_and_the_proto_it_leaves_behind() -> None:
    without_payment = tuple(e for e in SERVICES if e.name != "payment")
    assert set(problems(without_payment)) == {
        "order: its peer 'payment' is not a gRPC service of the catalog",
        "bookstore/services/payment/ has no gRPC service entry in the catalog",
        "protos/bookstore/rpc/v1/payment.proto is served by no entry of the catalog",
    }


def test_an_entry_without_its_folder_or_proto_is_named() -> None:
    shipping = service_catalog._grpc("shipping", "ShippingService")
    assert set(problems((*SERVICES, shipping))) == {
        "shipping: no entry point for `python -m bookstore.services.shipping`",
        "shipping: no proto file 'shipping.proto' in protos/bookstore/rpc/v1/",
        "shipping: bookstore.rpc.v1.shipping_pb2_grpc has no class ShippingServiceStub (run `make proto`)",
    }


def test_a_caller_listed_before_its_peer_is_named() -> None:
    order = service_catalog.entry("order")
    reordered = (order, *(e for e in SERVICES if e is not order))
    assert "order: listed before its peer catalog, which must start first" in problems(reordered)


def test_stub_classes_are_imported_only_when_asked_for() -> None:
    stub = service_catalog.entry("inventory").stub_class()
    assert stub.__name__ == "InventoryServiceStub"
    assert stub.__module__ == "bookstore.rpc.v1.inventory_pb2_grpc"
    with pytest.raises(ValueError, match="gateway"):
        service_catalog.entry("gateway").stub_class()


def test_every_client_module_has_one_field_per_peer_of_its_catalog_entry() -> None:
    from bookstore.gateway.clients import GatewayClients
    from bookstore.services.order.clients import OrderDependencies

    for caller, holder in (("gateway", GatewayClients), ("order", OrderDependencies)):
        fields = {f.name for f in dataclasses.fields(holder)}
        assert set(service_catalog.entry(caller).peers) <= fields, caller


def test_lookups_name_the_known_services_and_derive_callers_from_peers() -> None:
    with pytest.raises(ValueError, match="known: user, catalog"):
        service_catalog.entry("shipping")
    assert service_catalog.callers_of("inventory") == ("order", "inventory_sync")
    assert service_catalog.callers_of("order") == ("gateway",)
    assert service_catalog.names(Kind.GATEWAY) == ("gateway",)
    assert service_catalog.entry("payment").target_variable == "BOOKSTORE_PAYMENT_TARGET"


def test_entries_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        service_catalog.entry("user").name = "customer"  # type: ignore[misc]
