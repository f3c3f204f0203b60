"""Call details changed on their way out keep every field they did not change."""

from __future__ import annotations

import grpc

from bookstore.rpc.calls import CallDetails, changed


def test_a_change_replaces_only_the_fields_it_names_and_reads_missing_ones_as_none() -> None:
    class Legacy(grpc.ClientCallDetails):  # an older grpc's details: no wait_for_ready, no compression
        method = "/bookstore.rpc.v1.CatalogService/GetBook"
        timeout = None
        metadata = (("k", "v"),)
        credentials = None

    copy = changed(Legacy(), timeout=2.0)
    assert isinstance(copy, grpc.ClientCallDetails)
    assert copy == CallDetails(Legacy.method, 2.0, (("k", "v"),), None, None, None)
    assert changed(copy, metadata=()).timeout == 2.0
