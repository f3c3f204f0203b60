"""The bookstore's event consumers, each its own process: ``python -m bookstore.messaging.consumers.<name>``.

* ``notification``: the e-mails a customer would get about an order (recorded, not sent);
* ``analytics``: sales per book and orders per outcome;
* ``inventory_sync``: the warehouse's ledger of sold stock, and a safety net that releases the
  stock of every rejected order (idempotent, so it costs nothing when the saga already did).

None of them slows an order down: the order service only writes an outbox row, and each
consumer works through its queue at its own pace (``runtime`` runs them).
"""
